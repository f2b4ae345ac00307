-- Reservations never leak. A reservation names the task whose call holds it; when that
-- task's attempt is presumed dead, its run is cancelled or passes its deadline, or the
-- reservation outlives any call, it is `released`: its amount goes back to the run's and
-- the month's budgets. A call that was only slow settles later all the same, and its
-- actual cost is still spent.
ALTER TYPE reservation_status ADD VALUE 'released';
ALTER TABLE budget_reservations ADD COLUMN task_id uuid REFERENCES tasks (id) ON DELETE CASCADE;
CREATE INDEX budget_reservations_held_by_run ON budget_reservations (run_id) WHERE status = 'held';
