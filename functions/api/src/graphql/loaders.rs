//! The request's batch loader. Every node knows its siblings: the other nodes the same
//! read produced (a page of projects; the runs of all those projects). A child field
//! asked of one node is read for all its siblings at once, in one `Dashboard` read, and
//! the others take their share of that answer. So each level of a query costs one read
//! per field and arguments, however many parents it has, and the count does not depend on
//! timing: a timer-based DataLoader (async-graphql's waits 1 ms for keys) splits a level
//! into several reads when the machine is slow, which is when it matters most.

use autocrew_shared::domain::UserId;
use autocrew_shared::ports::{Dashboard, StoreError};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// What a read failed with; shared by every sibling that waited on it.
pub(crate) type LoadError = Arc<StoreError>;

/// The nodes one read produced, by id.
pub(crate) struct Siblings<K> {
    pub ids: Vec<K>,
    /// Tells this set apart from every other in the request.
    set: u64,
}

type Shared = Arc<dyn Any + Send + Sync>;
type Cell = Arc<OnceCell<Shared>>;

/// The caller's reads for one request.
pub(crate) struct Loads {
    pub dashboard: Arc<dyn Dashboard>,
    pub user: UserId,
    sets: AtomicU64,
    /// One answer per sibling set, field and arguments.
    answers: Mutex<HashMap<(u64, &'static str, String), Cell>>,
}

impl Loads {
    pub fn new(dashboard: Arc<dyn Dashboard>, user: UserId) -> Self {
        Loads {
            dashboard,
            user,
            sets: AtomicU64::new(0),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// A new sibling set of `ids`.
    pub fn siblings<K>(&self, ids: Vec<K>) -> Arc<Siblings<K>> {
        Arc::new(Siblings {
            ids,
            set: self.sets.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// `field` (with `arguments`, as text) for every sibling: read by the first sibling to
    /// ask, with `read` over all their ids; the others wait for that answer. A failed read
    /// is tried again by the next sibling.
    pub async fn batch<K, V, F, Fut>(
        &self,
        siblings: &Siblings<K>,
        (field, arguments): (&'static str, String),
        read: F,
    ) -> Result<Arc<V>, LoadError>
    where
        K: Clone,
        V: Send + Sync + 'static,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<V, StoreError>>,
    {
        let cell = {
            let mut answers = self
                .answers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            answers
                .entry((siblings.set, field, arguments))
                .or_default()
                .clone()
        };
        let shared = cell
            .get_or_try_init(|| async {
                let value = read(siblings.ids.clone()).await.map_err(Arc::new)?;
                Ok::<Shared, LoadError>(Arc::new(value))
            })
            .await?
            .clone();
        shared.downcast::<V>().map_err(|_| {
            Arc::new(StoreError::Backend(
                format!("the batch for {field} answered another type").into(),
            ))
        })
    }
}

/// Each parent's share of a batch's answer: its own list, empty when it has none.
pub(crate) fn share<K: Hash + Eq, T: Clone>(answer: &HashMap<K, Vec<T>>, key: &K) -> Vec<T> {
    answer.get(key).cloned().unwrap_or_default()
}
