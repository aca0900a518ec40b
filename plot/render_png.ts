// SVG to PNG without a browser: resvg (a Rust renderer shipped as a prebuilt Node binary) with the
// system's fonts for the labels.
import { Resvg } from "@resvg/resvg-js";

export function svgToPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    background: "#ffffff",
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
  });
  return resvg.render().asPng();
}
