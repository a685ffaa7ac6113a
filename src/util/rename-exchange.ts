/**
 * Atomically swaps two paths (Linux `renameat2(..., RENAME_EXCHANGE)`): a directory can replace another at
 * its path with no instant where neither is there. Node has no binding, so it is called through koffi
 * (already used for malloc_trim). Where it is missing — another OS, musl, a file system without it (EINVAL),
 * or `CIRCUITSCOPE_NO_RENAME_EXCHANGE=1` (tests of the fallback) — `renameExchange` returns false and
 * the caller falls back to two renames.
 */
import { createRequire } from "node:module";
import { constants } from "node:os";

type Renameat2 = (
  oldDirFd: number,
  oldPath: string,
  newDirFd: number,
  newPath: string,
  flags: number,
) => number;

const AT_FDCWD = -100;
const RENAME_EXCHANGE = 2;
/** errno values meaning "not here", as opposed to a real failure (ENOENT, EACCES...) to report. */
const UNSUPPORTED = new Set([22 /* EINVAL */, 38 /* ENOSYS */, 95 /* EOPNOTSUPP */, 18 /* EXDEV */]);

let loaded: { renameat2: Renameat2; errno: () => number } | null | undefined;

function load(): typeof loaded {
  if (process.platform !== "linux") return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as {
      load(path: string): { func(signature: string): Renameat2 };
      errno(): number;
    };
    const libc = koffi.load("libc.so.6");
    return {
      renameat2: libc.func(
        "int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)",
      ),
      errno: () => koffi.errno(),
    };
  } catch {
    return null; // no glibc 2.28+ or no FFI: the caller's fallback
  }
}

/**
 * Exchanges `a` and `b` (both must exist) in one step. Returns false, having changed nothing, where the
 * operation is not available; throws a Node-style error (code, syscall, path) if it failed otherwise.
 */
export function renameExchange(a: string, b: string): boolean {
  if (process.env.CIRCUITSCOPE_NO_RENAME_EXCHANGE === "1") return false;
  if (loaded === undefined) loaded = load();
  if (!loaded) return false;
  if (loaded.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) === 0) return true;
  const errno = loaded.errno();
  if (UNSUPPORTED.has(errno)) return false;
  const code = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `E${errno}`;
  throw Object.assign(new Error(`${code}: renameat2 ${a} -> ${b}`), {
    errno: -errno,
    code,
    syscall: "rename",
    path: b,
  });
}
