/** Agreement between two paired series: Pearson correlation and the least-squares line. */

export interface LinearAgreement {
  /** Pearson r; NaN when either series is constant. */
  correlation: number;
  /** Least-squares fit y ≈ slope · x + intercept; slope NaN when x is constant. */
  slope: number;
  intercept: number;
  n: number;
}

export function linearAgreement(x: ArrayLike<number>, y: ArrayLike<number>): LinearAgreement {
  const n = x.length;
  if (y.length !== n) throw new Error(`linearAgreement: ${n} x values but ${y.length} y values`);
  if (n === 0) return { correlation: Number.NaN, slope: Number.NaN, intercept: Number.NaN, n };
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxx += dx * dx;
    syy += dy * dy;
    sxy += dx * dy;
  }
  const slope = sxx > 0 ? sxy / sxx : Number.NaN;
  return {
    correlation: sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN,
    slope,
    intercept: my - slope * mx,
    n,
  };
}
