/** What the user reads after `circuitscope: error: `: system errors get their path and a fix. */

const FS_FIXES: Record<string, string> = {
  EACCES: "no permission: choose a path you can write to (or fix its permissions)",
  EPERM: "the operation is not permitted: choose another path (or fix its permissions)",
  EISDIR: "that is a directory where a file was expected: give a file path",
  ENOTDIR: "a part of that path is a file, not a directory: fix the path",
  ENOENT: "no such file or directory: check the path",
  ENOSPC: "the disk is full: free space or write elsewhere",
  EROFS: "the file system is read-only: write elsewhere",
  EEXIST: "it already exists: choose another path",
  EADDRINUSE: "the port is already in use: pick another with --port (or --port 0 for any free port)",
  EADDRNOTAVAIL: "that address is not available on this machine: use --host 127.0.0.1",
  EMFILE: "too many open files: raise the limit (ulimit -n) and retry",
};

/** A system error (raw `EACCES: permission denied, open ...`) gets its path and a fix; others pass through. */
export function userMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const sys = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const fix = sys.code ? FS_FIXES[sys.code] : undefined;
  if (!fix) return err.message;
  const where = sys.path ?? (sys.port !== undefined ? `${sys.address ?? ""}:${sys.port}` : undefined);
  return `${where ? `${where}: ` : ""}${fix} (${sys.code}${sys.syscall ? ` in ${sys.syscall}` : ""})`;
}
