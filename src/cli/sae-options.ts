/**
 * `--sae DIR|owner/repo/FOLDER`, `--steer FEATURE=VALUE` and `--ablate FEATURE` for commands that run a
 * model. The SAE's cfg.json is read and checked before the model loads; its fit to the model (hook and
 * width) and its weights right after, before any model work.
 */
import type { Command } from "commander";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { HookSpec, HookSplice } from "../model/hooks.ts";
import type { Sae } from "../sae/sae.ts";
import type { SaeConfig } from "../sae/sae-config.ts";
import { collect, UsageError } from "./common.ts";

export interface SaeCliOptions {
  sae?: string;
  steer: string[];
  ablate: string[];
  offline?: boolean;
}

export function addSaeOptions(cmd: Command, opts: { edits: boolean }): Command {
  cmd.option(
    "--sae <dir|owner/repo/folder|stories260k/folder>",
    "an SAELens SAE directory, a hub repository with the SAE's folder (fetched into the Hugging Face cache), or a bundled SAE's short id (stories260k/blocks.2.hook_resid_pre)",
  );
  if (!opts.edits) return cmd;
  return cmd
    .option(
      "--steer <feature=value>",
      "clamp an SAE feature to a value at every position (repeatable)",
      collect,
      [],
    )
    .option("--ablate <feature>", "clamp an SAE feature to 0 at every position (repeatable)", collect, []);
}

/** An SAE resolved and its config checked: call before loading the model. */
export interface PendingSae {
  dir: string;
  cfg: SaeConfig;
  steer: Map<number, number>;
  ablate: number[];
}

export async function prepareSae(opts: SaeCliOptions): Promise<PendingSae | null> {
  const edits = (opts.steer?.length ?? 0) + (opts.ablate?.length ?? 0);
  if (!opts.sae) {
    if (edits) throw new UsageError("--steer and --ablate edit SAE features: add --sae DIR");
    return null;
  }
  const { resolveSaeDir } = await import("../sae/resolve-sae.ts");
  const { readSaeConfig } = await import("../sae/saelens-dir.ts");
  const dir = await resolveSaeDir(opts.sae, { offline: opts.offline, progress: true });
  const cfg = readSaeConfig(dir);
  const feature = (text: string, flag: string): number => {
    const f = Number(text);
    if (!Number.isInteger(f) || f < 0 || f >= cfg.dSae) {
      throw new UsageError(
        `${flag} ${text}: a feature is an integer from 0 to ${cfg.dSae - 1} (d_sae ${cfg.dSae})`,
      );
    }
    return f;
  };
  const steer = new Map<number, number>();
  for (const s of opts.steer ?? []) {
    const m = /^\s*([^=]+)=(.+)$/.exec(s);
    const value = m ? Number(m[2]) : Number.NaN;
    if (!m || !Number.isFinite(value))
      throw new UsageError(`--steer ${s}: write FEATURE=VALUE, e.g. --steer 123=8`);
    steer.set(feature(m[1].trim(), "--steer"), value);
  }
  const ablate = (opts.ablate ?? []).map((a) => feature(a, "--ablate"));
  return { dir, cfg, steer, ablate };
}

/** The SAE for a loaded model: its fit checked, its weights read for the model's kernels. */
export async function loadPreparedSae(pending: PendingSae, model: HookedTransformer): Promise<Sae> {
  const { checkSaeFitsModel } = await import("../sae/hook-width.ts");
  const { loadSaeLensDir } = await import("../sae/saelens-dir.ts");
  try {
    checkSaeFitsModel(pending.cfg, model.cfg);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return loadSaeLensDir(pending.dir, { kernels: model.kernels, cfg: pending.cfg });
}

/**
 * Run options putting the SAE (if any) into the model, loaded for it: with feature edits, the SAE with its error term plus the
 * clamping hook (only the edited features change the activation); without, the reconstruction alone.
 */
export async function saeRunOptions(
  pending: PendingSae | null,
  model: HookedTransformer,
): Promise<{ splices: HookSplice[]; fwdHooks: HookSpec[] }> {
  if (!pending) return { splices: [], fwdHooks: [] };
  const sae = await loadPreparedSae(pending, model);
  const { featureEditHook, saeSplice } = await import("../sae/attach.ts");
  const edited = pending.steer.size + pending.ablate.length > 0;
  return edited
    ? {
        splices: [saeSplice(sae, { useErrorTerm: true })],
        fwdHooks: [featureEditHook(sae, { steer: pending.steer, ablate: pending.ablate })],
      }
    : { splices: [saeSplice(sae)], fwdHooks: [] };
}
