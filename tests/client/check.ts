// A mobile team's first screen, written against the client generated from openapi.json:
// sign up, create a project, post a command, read the run. `tsc` type-checks it (a field
// the API does not send, or a status it cannot have, fails the build); `node out/check.js
// BASE_URL` runs it against a live API, then reads the run through GraphQL (graphql.ts).
// Without BASE_URL it checks docs/schema.graphql alone.
import createClient from "openapi-fetch";
import { checkLive, checkedSchema } from "./graphql.js";
import type { components, paths } from "./generated/api.js";

type RunView = components["schemas"]["RunView"];
type RunStatus = components["schemas"]["RunStatus"];

/** Words for each status: the switch must cover every one the document names. */
function describe(status: RunStatus): string {
  switch (status) {
    case "pending":
    case "planning":
      return "starting";
    case "running":
    case "compiling":
      return "working";
    case "succeeded":
      return "done";
    case "failed":
    case "cancelled":
      return "stopped";
    default: {
      const unknown: never = status;
      return unknown;
    }
  }
}

export async function firstRun(baseUrl: string, email: string): Promise<{ view: RunView; token: string }> {
  const client = createClient<paths>({ baseUrl });
  // Sign-ups are limited a minute: a 429 is waited out as its Retry-After says.
  let signedUp = await client.POST("/auth/signup", {
    body: { email, password: "correct horse battery staple" },
  });
  for (let tries = 1; signedUp.response.status === 429 && tries < 6; tries++) {
    const wait = Number(signedUp.response.headers.get("retry-after") ?? "10");
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    signedUp = await client.POST("/auth/signup", {
      body: { email, password: "correct horse battery staple" },
    });
  }
  if (!signedUp.data) throw new Error(`sign-up: ${signedUp.error?.error}`);
  const session = signedUp.data;
  const tokenType: "Bearer" = session.token_type;
  const headers = { Authorization: `${tokenType} ${session.access_token}` };

  const created = await client.POST("/projects", { body: { name: "Keto recipes" }, headers });
  if (!created.data) throw new Error(`create project: ${created.error?.error}`);
  const projectId: string = created.data.id;

  const started = await client.POST("/projects/{project_id}/commands", {
    params: { path: { project_id: projectId } },
    body: { command: "Build a recipe app for keto dieters", budget_usd: 2, max_concurrency: 2 },
    headers,
  });
  if (!started.data) throw new Error(`post command: ${started.error?.error}`);

  const read = await client.GET("/runs/{run_id}", {
    params: { path: { run_id: started.data.run_id } },
    headers,
  });
  if (!read.data) throw new Error(`read run: ${read.error?.error}`);
  const view = read.data;
  // @ts-expect-error: a run has no `owner`; the generated type says which fields it has.
  void view.run.owner;
  const spent: number = view.totals.cost;
  console.log(
    `client: run ${view.run.id} is ${view.run.status} (${describe(view.run.status)}),`,
    `${view.tasks.length} task(s), ${spent} micro-dollars so far, user ${session.user.email}`,
  );
  return { view, token: session.access_token };
}

const [baseUrl] = process.argv.slice(2);
try {
  checkedSchema();
  if (baseUrl) {
    const { view, token } = await firstRun(baseUrl, `client-${Date.now()}@example.com`);
    await checkLive(baseUrl, token, view.run.id, view.run.status);
  }
} catch (error: unknown) {
  console.error(error);
  process.exit(1);
}
