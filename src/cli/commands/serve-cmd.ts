import { type AddressInfo, createServer as createNetServer, isIPv6 } from "node:net";
import type { Command } from "commander";
import {
  addModelOptions,
  collect,
  type ModelCliOptions,
  parseIntOption,
  UsageError,
  withCtrlC,
} from "../common.ts";

interface ServeOptions extends ModelCliOptions {
  port: number;
  host?: string;
  allowedHost: string[];
  token: boolean; // commander turns --no-token into token: false
  maxQueue: number;
  neuronIndex?: string;
  graph?: string;
  transcoders?: string;
  transcoderIndex?: string;
  sae?: string;
  featureIndex?: string;
}

const DEFAULT_HOST = "127.0.0.1";
/** What the OS reports for a bind to every interface, however it was spelled (0, 0.0.0.0, ::, ::0, ...). */
const WILDCARD_ADDRESSES = ["0.0.0.0", "::"];

/** What a failed listen means for the user, and what to pass instead. */
function listenFailure(err: NodeJS.ErrnoException, port: number, host: string): Error {
  switch (err.code) {
    case "EADDRINUSE":
      return new UsageError(`port ${port} is in use: pass --port 0 (any free port) or another port`);
    case "EACCES":
      return new UsageError(
        `not allowed to listen on port ${port} (ports below 1024 need privileges): pass --port 0 or a port above 1023`,
      );
    case "EADDRNOTAVAIL":
      return new UsageError(
        `address ${host} is not an address of this machine: pass --host 127.0.0.1 (the default) or one of its own addresses`,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new UsageError(`host ${host} does not resolve: pass --host 127.0.0.1 (the default)`);
    default:
      return err;
  }
}

/**
 * Tries the address and port before the (slow) model load, so they fail at once, not a minute later.
 * Resolves with the address the OS bound: every spelling of "all interfaces" comes back as 0.0.0.0 or ::.
 */
function checkCanListen(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", (err) => reject(listenFailure(err, port, host)));
    probe.listen({ port, host, exclusive: true }, () => {
      const { address } = probe.address() as AddressInfo;
      probe.close(() => resolve(address));
    });
  });
}

/**
 * The page's address as printed, under a name the Host check accepts: a wildcard bind through loopback,
 * any other by the address or name the user typed (not the IP it resolved to, which is not an allowed name).
 */
function pageUrl(host: string, bound: AddressInfo, wildcard: boolean): URL {
  const name = wildcard
    ? bound.family === "IPv6"
      ? "localhost"
      : "127.0.0.1"
    : bound.address === "::1"
      ? "localhost"
      : isIPv6(host)
        ? `[${host}]`
        : host;
  return new URL(`http://${name}:${bound.port}/`);
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("serve")
      .description(
        "interactive explorer in the browser: predictions, attribution, attention, patching, neurons",
      ),
  )
    .option("--port <n>", "port to listen on (0 = any free port)", parseIntOption("port"), 8080)
    .option(
      "--host <address>",
      `address to bind (default ${DEFAULT_HOST}; 0.0.0.0 exposes the model to your network)`,
    )
    .option(
      "--allowed-host <name>",
      "also answer requests for this Host (name, or name:port for a tunnel); repeatable",
      collect,
      [],
    )
    .option("--no-token", "do not require the session token on API requests (trusted machines only)")
    .option(
      "--max-queue <n>",
      "most model jobs queued or running at once; more are refused with 429",
      parseIntOption("max-queue"),
      16,
    )
    .option("--neuron-index <dir>", "neuron index directory (from `circuitscope index`) for neuron lookups")
    .option("--graph <file>", "attribution graph JSON (from `circuitscope graph --out`) for the graph panel")
    .option(
      "--sae <dir|owner/repo/folder|stories260k/folder>",
      "an SAELens SAE (a directory, a hub id, or a bundled SAE's short id): feature search, feature pages and the active features in predictions (checked at start-up)",
    )
    .option(
      "--feature-index <dir>",
      "feature index of that SAE (from `circuitscope index --sae`) for feature pages (default: a bundled SAE's own)",
    )
    .option(
      "--transcoders <dir>",
      "circuit-tracer transcoder set for this model: the graph panel computes a prompt's attribution graph",
    )
    .option(
      "--transcoder-index <dir>",
      "feature index of those transcoders (from `circuitscope index --transcoders`): a graph's feature nodes open their pages (default: DIR/feature-index when present, as in the bundled set)",
    )
    .action(async (opts: ServeOptions) => {
      if (!opts.model)
        throw new UsageError("No model given: pass --model gpt2 (or a local checkpoint directory)");
      if (opts.port < 0 || opts.port > 65535)
        throw new UsageError(`--port must be 0..65535, got ${opts.port}`);
      if (opts.maxQueue < 1) throw new UsageError(`--max-queue must be at least 1, got ${opts.maxQueue}`);
      if (opts.host !== undefined && opts.host.trim() === "")
        throw new UsageError(
          "--host is empty: pass the address to listen on, e.g. --host 127.0.0.1 (the default, this machine only) or --host 0.0.0.0 (every interface)",
        );
      // Loopback unless the user names another address: exposing the model is an explicit choice.
      const host = opts.host ?? DEFAULT_HOST;
      const wildcard = WILDCARD_ADDRESSES.includes(await checkCanListen(opts.port, host));
      // A specific address the user binds is a name the page may be opened under.
      const allowedHosts = wildcard ? opts.allowedHost : [host, ...opts.allowedHost];
      // --sae: a hub id is fetched now, the directory's cfg.json checked before the model loads.
      const sae = opts.sae
        ? await (await import("../../sae/resolve-sae.ts")).resolveSaeDir(opts.sae, {
            offline: opts.offline,
            progress: true,
          })
        : undefined;
      // A bundled SAE (--sae stories260k/blocks.2.hook_resid_pre) brings its own feature index.
      const featureIndex =
        opts.featureIndex ??
        (sae
          ? ((await import("../../sae/bundled-saes.ts")).bundledFeatureIndexDir(sae) ?? undefined)
          : undefined);
      const { createServer } = await import("../../server/app.ts");
      process.stderr.write(`Loading ${opts.model}…\n`);
      const server = await createServer({
        model: {
          model: opts.model,
          backend: opts.backend,
          process: opts.process !== false,
          offline: opts.offline,
        },
        neuronIndex: opts.neuronIndex,
        graph: opts.graph,
        transcoders: opts.transcoders,
        transcoderIndex: opts.transcoderIndex,
        sae,
        featureIndex,
        token: opts.token ? undefined : null,
        allowedHosts,
        maxQueue: opts.maxQueue,
      });
      try {
        await server.app.listen({ port: opts.port, host });
      } catch (err) {
        await server.close(); // stops the model worker, so the process can exit
        throw listenFailure(err as NodeJS.ErrnoException, opts.port, host);
      }
      const url = pageUrl(host, server.app.server.address() as AddressInfo, wildcard);
      if (server.token !== null) url.searchParams.set("token", server.token);
      process.stdout.write(`circuitscope explorer for ${opts.model}: ${url}\n`);
      if (wildcard) {
        process.stderr.write(
          "Warning: listening on every network interface; anyone who can reach this machine can use it.\n" +
            "Pages are answered only for the names in --allowed-host (plus localhost).\n",
        );
      }
      if (server.token === null)
        process.stderr.write("Warning: --no-token: any program on this machine can use the API.\n");
      // Serves until Ctrl-C or SIGTERM (the one interrupt path; a second signal ends it at once).
      await withCtrlC(
        (signal) => new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
      );
      await server.close();
      process.exit(0);
    });
}
