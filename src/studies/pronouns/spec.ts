/** Placeholder until the Llama engine lands; replaced by the pronoun study spec. */
import { contractionsSpec } from "../contractions/spec.ts";
export const pronounsSpec = contractionsSpec;
export const resolveBundledModel = (m: string) => m;
