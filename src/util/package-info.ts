import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The package's root folder: two levels above this module both in a checkout (src/util) and in the
 * published package (dist/util), so bundled files (models/, package.json) resolve the same way in both.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

let cached: { name: string; version: string } | undefined;

/** name and version from the package's own package.json. */
export function packageInfo(): { name: string; version: string } {
  if (!cached) {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    cached = { name: String(pkg.name), version: String(pkg.version) };
  }
  return cached;
}
