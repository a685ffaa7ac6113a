/** Defaults shared by every front end of circuit finding (CLI, explorer, studies), kept light to import. */

/** Top edges whose estimate is checked by exact scores: one number wherever a circuit is found. */
export const DEFAULT_COMPARE_TOP = 20;
