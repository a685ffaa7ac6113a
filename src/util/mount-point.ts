/**
 * Is a directory a mount point (a Docker volume, a bind mount)? A mount point cannot be renamed or
 * replaced (EBUSY), so a report must go inside it. Linux lists every mount in /proc/self/mountinfo
 * (bind mounts of one file system included, which share the parent's device number); elsewhere a
 * device number different from the parent's is the sign.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";

/** Mount points listed by the kernel (field 5 of mountinfo, with its octal escapes decoded). */
function linuxMountPoints(): Set<string> | null {
  try {
    const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
    const decode = (s: string) =>
      s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    return new Set(lines.filter((l) => l.trim() !== "").map((l) => decode(l.split(" ")[4])));
  } catch {
    return null;
  }
}

/** True when the existing directory `dir` is a mount point. */
export function mountPointOf(dir: string): boolean {
  const real = realpathSync(dir);
  if (real === dirname(real)) return true; // the root
  const listed = process.platform === "linux" ? linuxMountPoints() : null;
  if (listed) return listed.has(real);
  return statSync(real).dev !== statSync(dirname(real)).dev;
}
