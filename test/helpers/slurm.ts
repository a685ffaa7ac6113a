/**
 * A real one-machine Slurm cluster for tests: Debian's slurm-wlm and munge, started as root without systemd
 * or cgroups (proctrack/linuxproc, task/none), every file in a temporary directory, stopped by process id.
 * `startSlurm` returns undefined with the reason when that cannot be done here (not root, no packages and
 * no apt), so the test can be skipped with a clear message.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export interface SlurmCluster {
  /** Environment for sbatch, squeue, scontrol (SLURM_CONF). */
  env: NodeJS.ProcessEnv;
  stop(): void;
}

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

function ensurePackages(): string | undefined {
  if (have("slurmctld") && have("slurmd") && have("munged") && have("sbatch")) return undefined;
  if (process.getuid?.() !== 0) return "slurm-wlm and munge are not installed and this user is not root";
  if (!have("apt-get")) return "slurm-wlm and munge are not installed and there is no apt-get";
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = spawnSync("apt-get", ["update", "-qq"], { env, stdio: "ignore" });
  const install = spawnSync("apt-get", ["install", "-y", "-qq", "slurm-wlm", "munge"], {
    env,
    stdio: "ignore",
  });
  if (update.status !== 0 || install.status !== 0) return "apt-get could not install slurm-wlm and munge";
  return undefined;
}

function waitFor(what: string, ok: () => boolean, seconds: number): void {
  const until = Date.now() + seconds * 1000;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`Slurm test cluster: ${what} did not happen within ${seconds} s`);
    execFileSync("sleep", ["0.2"]);
  }
}

function pidOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function startSlurm(dir: string): SlurmCluster | { skip: string } {
  if (process.getuid?.() !== 0)
    return { skip: "the Slurm daemons are started as root here, and this user is not root" };
  const missing = ensurePackages();
  if (missing) return { skip: missing };
  for (const d of ["state", "spool", "log"]) mkdirSync(join(dir, d), { recursive: true });
  const key = join(dir, "munge.key");
  writeFileSync(key, randomBytes(1024));
  chmodSync(key, 0o600);
  const socket = join(dir, "munge.sock");
  const pids: string[] = [join(dir, "munged.pid"), join(dir, "slurmctld.pid"), join(dir, "slurmd.pid")];
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // Stopped by process id, the newest first; each is waited for (and killed if it lingers), so nothing writes
  // into the directory after this returns.
  const stop = () => {
    for (const file of pids.slice().reverse()) {
      const pid = pidOf(file);
      if (pid === undefined || !alive(pid)) continue;
      process.kill(pid, "SIGTERM");
      const until = Date.now() + 10_000;
      while (alive(pid) && Date.now() < until) execFileSync("sleep", ["0.1"]);
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  };
  try {
    execFileSync("munged", [
      "--force",
      `--socket=${socket}`,
      `--key-file=${key}`,
      `--pid-file=${pids[0]}`,
      `--log-file=${join(dir, "log/munged.log")}`,
      `--seed-file=${join(dir, "munge.seed")}`,
    ]);
    // Ports above the usual 6817/6818, so a Slurm already on the machine is left alone.
    const port = 20000 + (process.pid % 20000);
    const conf = join(dir, "slurm.conf");
    writeFileSync(
      conf,
      [
        "ClusterName=circuitscope-test",
        "SlurmctldHost=localhost",
        `SlurmctldPort=${port}`,
        `SlurmdPort=${port + 1}`,
        "AuthType=auth/munge",
        `AuthInfo=socket=${socket}`,
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        `StateSaveLocation=${join(dir, "state")}`,
        `SlurmdSpoolDir=${join(dir, "spool")}`,
        `SlurmctldPidFile=${pids[1]}`,
        `SlurmdPidFile=${pids[2]}`,
        `SlurmctldLogFile=${join(dir, "log/slurmctld.log")}`,
        `SlurmdLogFile=${join(dir, "log/slurmd.log")}`,
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "ReturnToService=2",
        "MinJobAge=3600",
        `NodeName=localhost NodeHostname=${hostname()} CPUs=2 RealMemory=4000 State=UNKNOWN`,
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
      ].join("\n"),
    );
    const env = { ...process.env, SLURM_CONF: conf };
    execFileSync("slurmctld", ["-f", conf], { env });
    waitFor("slurmctld start", () => existsSync(pids[1]), 20);
    execFileSync("slurmd", ["-f", conf, "-N", "localhost"], { env });
    waitFor(
      "the node turning idle",
      () => /idle/.test(spawnSync("sinfo", ["-h", "-o", "%t"], { env, encoding: "utf8" }).stdout ?? ""),
      30,
    );
    return { env, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

/** Waits until none of `jobs` is pending or running; returns each job's final state (array tasks one by one). */
export function waitForJobs(env: NodeJS.ProcessEnv, jobs: string[], seconds: number): Map<string, string> {
  waitFor(
    `jobs ${jobs.join(",")} finishing`,
    () => {
      const q = spawnSync("squeue", ["-h", "-j", jobs.join(","), "-o", "%i %T"], { env, encoding: "utf8" });
      return q.status === 0 && q.stdout.trim() === "";
    },
    seconds,
  );
  const states = new Map<string, string>();
  for (const job of jobs) {
    const out = execFileSync("scontrol", ["-o", "show", "job", job], { env, encoding: "utf8" });
    for (const line of out.trim().split("\n")) {
      const id = /JobId=(\d+)/.exec(line)?.[1];
      const task = /ArrayTaskId=(\d+)/.exec(line)?.[1];
      const state = /JobState=(\S+)/.exec(line)?.[1] ?? "?";
      states.set(task === undefined ? (id ?? job) : `${job}_${task}`, state);
    }
  }
  return states;
}
