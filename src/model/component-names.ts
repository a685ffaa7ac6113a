/**
 * How reports, pages, figures and CLI text name a model's components: heads `L4H2`, MLP layers `MLP4`.
 * One home, so one report never names a head two ways (issue 28 point 10). Machine formats
 * keep their own names (circuit edges in the EAP library's `a4.h2` / `m4`, hook names in TransformerLens').
 */

/** A head: `L4H2` (layer 4, head 2). */
export const headName = (layer: number, head: number): string => `L${layer}H${head}`;

/** An MLP layer: `MLP4`. */
export const mlpName = (layer: number): string => `MLP${layer}`;
