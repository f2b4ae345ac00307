// The dashboard's GraphQL as a web client meets it, checked by the reference
// implementation (graphql-js) rather than by the server's own library: the checked-in
// schema must build and be valid, and the dashboard's query must validate against it.
// Against a live API, the standard introspection query (what GraphiQL and code
// generators send) must give back that very schema, and the query must find the run the
// REST client just started, with the status REST gave it.
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  parse,
  printSchema,
  validate,
  type GraphQLSchema,
  type IntrospectionQuery,
} from "graphql";
import { readFileSync } from "node:fs";

export const DASHBOARD = `query Dashboard($first: Int!) {
  me {
    email
    projects(first: $first) {
      nodes {
        id
        name
        runs(first: 5) {
          nodes { id status cost { calls cost } tasks { key agent status } }
          pageInfo { hasNextPage endCursor }
        }
      }
      pageInfo { hasNextPage }
    }
  }
}`;

interface Dashboard {
  me: {
    email: string;
    projects: {
      nodes: {
        id: string;
        name: string;
        runs: { nodes: { id: string; status: string; cost: { calls: number; cost: number } }[] };
      }[];
    };
  };
}

/** docs/schema.graphql, built and validated by graphql-js; throws what is wrong. */
export function checkedSchema(): GraphQLSchema {
  const file = new URL("../../../docs/schema.graphql", import.meta.url);
  const schema = buildSchema(readFileSync(file, "utf8"));
  const errors = validate(schema, parse(DASHBOARD));
  if (errors.length > 0) throw new Error(`the dashboard query: ${errors.map(String).join("; ")}`);
  return schema;
}

function sdl(schema: GraphQLSchema): string {
  return printSchema(lexicographicSortSchema(schema));
}

async function post<T>(baseUrl: string, token: string, query: string, variables = {}): Promise<T> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (response.status !== 200 || !body.data || body.errors) {
    throw new Error(`graphql answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data;
}

/** Whether a run read as `before` may then read as `after` (REST's lower-case names). */
function followsOn(before: string, after: string): boolean {
  const progress = ["pending", "planning", "running", "compiling"];
  const ended = ["succeeded", "failed", "cancelled"];
  if (ended.includes(before)) return after === before;
  if (ended.includes(after)) return true;
  return progress.includes(after) && progress.indexOf(after) >= progress.indexOf(before);
}

/** The live API: introspection equals the file, and the dashboard shows `runId`. */
export async function checkLive(
  baseUrl: string,
  token: string,
  runId: string,
  restStatus: string,
): Promise<void> {
  const file = checkedSchema();
  const introspected = buildClientSchema(await post<IntrospectionQuery>(baseUrl, token, getIntrospectionQuery()));
  if (sdl(introspected) !== sdl(file)) {
    throw new Error("the schema served by introspection differs from docs/schema.graphql (make openapi)");
  }
  const dashboard = await post<Dashboard>(baseUrl, token, DASHBOARD, { first: 20 });
  const run = dashboard.me.projects.nodes.flatMap((p) => p.runs.nodes).find((r) => r.id === runId);
  if (!run) throw new Error(`the dashboard does not show run ${runId}: ${JSON.stringify(dashboard)}`);
  if (!followsOn(restStatus, run.status.toLowerCase())) {
    throw new Error(`run ${runId} is ${run.status} on GraphQL, read after ${restStatus} on REST`);
  }
  console.log(
    `graphql: introspection gives docs/schema.graphql (${Object.keys(file.getTypeMap()).length} types);`,
    `the dashboard shows run ${runId} as ${run.status}, ${run.cost.calls} model call(s)`,
  );
}
