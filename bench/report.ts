/** The result table: rows are operation/dataset with the unit in the label, columns are tools. */
import type { ToolId } from "./tools.ts";

/** A number, or why there is none ("fails", "error"). */
export type Cell = number | string;

export interface Row {
  key: string;
  label: string;
  /** The figure for this row (reference CLI on this machine, or a target). */
  target?: string;
  values: Partial<Record<ToolId, Cell>>;
}

export function fmt(v: Cell | undefined): string {
  if (v === undefined) return "-";
  if (typeof v === "string") return v;
  if (!Number.isFinite(v)) return "?";
  if (v >= 100) return Math.round(v).toLocaleString("en-US");
  if (v >= 10) return v.toFixed(1);
  // Sub-unit figures (µs-scale times in ms) keep two significant digits.
  return v >= 1 || v === 0 ? v.toFixed(2) : v.toPrecision(2);
}

/** Plain-text table of the rows that have at least one value. */
export function formatTable(rows: Row[], tools: ToolId[], targetHeader: string): string {
  const shown = rows.filter((r) => Object.keys(r.values).length > 0);
  const header = ["operation, dataset, unit", ...tools, targetHeader];
  const body = shown.map((r) => [r.label, ...tools.map((t) => fmt(r.values[t])), r.target ?? ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(header), rule, ...body.map(line)].join("\n");
}
