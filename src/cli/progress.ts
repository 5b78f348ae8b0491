/**
 * A progress bar on stderr (bytes and entries, rate, ETA) for create, extract and verify. Shown only
 * when stderr is a terminal and -q was not given, and only once the work has lasted a moment (so
 * small jobs never flash a bar) unless --progress asks for it at once. The bar library is loaded
 * only when a bar is really drawn, so short commands never pay for it.
 */
import type { MultiBar, SingleBar } from "cli-progress";
import type { Ctx, Overlay } from "./common.ts";
import { compactBytes } from "./format.ts";

export interface ProgressOptions {
  /** Word in front of the bar, e.g. "Extracting". */
  label: string;
  /** true: draw at once; false: never; undefined: after `delayMs` on a terminal. */
  force?: boolean;
  /** Milliseconds of work after which the bar appears (default 1000). */
  delayMs?: number;
  /** Stream to draw on (tests pass a fake terminal); default process.stderr. */
  stream?: NodeJS.WriteStream;
}

export interface Totals {
  bytes: number;
  entries: number;
}

/** Whether a bar may be drawn at all for this invocation. */
export function progressAllowed(
  ctx: Ctx,
  force: boolean | undefined,
  stream: NodeJS.WriteStream = process.stderr,
): boolean {
  if (force === false || ctx.quiet) return false;
  if (process.env.BFC_PROGRESS === "0") return false;
  return stream.isTTY === true;
}

export class Progress implements Overlay {
  private readonly ctx: Ctx;
  private readonly opts: ProgressOptions;
  private readonly stream: NodeJS.WriteStream;
  private readonly enabled: boolean;
  private totals: Totals;
  private bytes = 0;
  private entries = 0;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private multi: MultiBar | null = null;
  private bar: SingleBar | null = null;
  private stopped = false;
  private loading: Promise<void> | null = null;

  constructor(ctx: Ctx, totals: Totals, opts: ProgressOptions) {
    this.ctx = ctx;
    this.opts = opts;
    this.stream = opts.stream ?? process.stderr;
    this.totals = { ...totals };
    this.enabled = progressAllowed(ctx, opts.force, this.stream);
    if (!this.enabled) return;
    if (opts.force === true) {
      this.loading = this.show();
      return;
    }
    this.timer = setTimeout(() => void this.show(), opts.delayMs ?? 1000);
    this.timer.unref();
  }

  /** Resolves once a bar asked for with --progress is on screen (so even short work shows it). */
  async ready(): Promise<void> {
    await this.loading;
  }

  get active(): boolean {
    return this.bar !== null;
  }

  setTotals(totals: Totals): void {
    this.totals = { ...totals };
    this.bar?.setTotal(this.value(this.totals));
  }

  update(bytes: number, entries: number): void {
    this.bytes = bytes;
    this.entries = entries;
    if (this.bar) this.bar.update(this.value({ bytes, entries }), this.payload());
  }

  /** Progress is measured in bytes when there are any, else in entries. */
  private value(t: Totals): number {
    return this.totals.bytes > 0 ? t.bytes : t.entries;
  }

  private payload(): Record<string, string> {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    return {
      label: this.opts.label,
      done: compactBytes(this.bytes),
      size: compactBytes(this.totals.bytes),
      entries: String(this.entries),
      totalEntries: String(this.totals.entries),
      rate: `${compactBytes(this.bytes / secs)}/s`,
    };
  }

  private async show(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const mod = await import("cli-progress");
    // cli-progress is CommonJS: its exports arrive as the default export.
    const lib = (mod as unknown as { default?: typeof mod }).default ?? mod;
    if (this.stopped) return;
    this.multi = new lib.MultiBar({
      stream: this.stream,
      format:
        "{label} [{bar}] {percentage}% | {done}/{size} | {entries}/{totalEntries} entries | {rate} | ETA {eta_formatted}",
      barsize: 24,
      hideCursor: false,
      clearOnComplete: true,
      forceRedraw: true,
      fps: 8,
      etaBuffer: 50,
      autopadding: true,
    });
    this.bar = this.multi.create(
      this.value(this.totals),
      this.value({ bytes: this.bytes, entries: this.entries }),
      this.payload(),
    );
    this.ctx.overlay = this;
    this.multi.update();
  }

  /** Erases the bar's line so that other output can be written; it is redrawn on the next tick. */
  clear(): void {
    if (this.bar) this.stream.write("\r\x1b[2K");
  }

  redraw(): void {
    // The bar redraws itself on its next tick (forceRedraw), at most a frame later.
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.multi) {
      this.multi.update();
      this.multi.stop();
      this.stream.write("\r\x1b[2K");
    }
    this.multi = null;
    this.bar = null;
    if (this.ctx.overlay === this) this.ctx.overlay = null;
  }
}
