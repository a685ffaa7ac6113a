/** Types of low-rss-malloc.js, for the TypeScript that imports it (bench/memory.ts, tests). */
export declare const LOW_RSS_MALLOC_ENV: Readonly<{ MALLOC_MMAP_THRESHOLD_: string }>;
export declare const LOW_RSS_VAR: string;
export declare function glibcVersion(): string | undefined;
export declare function wantsRelaunch(facts?: {
  env: NodeJS.ProcessEnv;
  glibc: string | undefined;
  execArgv: string[];
}): boolean;
export declare function relaunchWithLowRssMalloc(): Promise<boolean>;
