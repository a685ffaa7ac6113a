/** Starts the explorer on the fixture model, listening on 127.0.0.1 at a free port. */
import { createServer, type ExplorerServer } from "../../src/server/app.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

export async function startFixtureServer(
  opts: { neuronIndex?: string } = {},
): Promise<{ server: ExplorerServer; base: string }> {
  const server = await createServer({
    model: { model: FIXTURE_DIR, backend: "onnx", process: true },
    neuronIndex: opts.neuronIndex,
  });
  const base = await server.app.listen({ port: 0, host: "127.0.0.1" });
  return { server, base };
}
