import { Resvg } from "@resvg/resvg-js";

/**
 * Rasterises an SVG with resvg (no browser). Text uses the system fonts: the figures ask for DejaVu /
 * Liberation first, which Debian installs alongside chromium (fonts-dejavu-core, fonts-liberation).
 */
export function svgToPng(svg: string, scale = 2): Buffer {
  if (!(scale > 0 && scale <= 16))
    throw new Error(`svgToPng: scale ${scale} must be in (0, 16]; 2 suits print.`);
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "#ffffff",
    font: {
      loadSystemFonts: true,
      defaultFontFamily: "DejaVu Sans",
      sansSerifFamily: "DejaVu Sans",
      monospaceFamily: "DejaVu Sans Mono",
    },
  });
  return resvg.render().asPng();
}
