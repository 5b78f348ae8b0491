import type { BlockSource } from "./block-source.ts";
import { Qcow2Image } from "./qcow2.ts";
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, type Qcow2Compression } from "./qcow2-header.ts";

/** One image of a (possibly single-image) backing chain, as `bfc disk` shows it. */
export interface ImageLayer {
  /** The path it was opened by. */
  path: string;
  format: "raw" | "qcow2";
  /** Bytes of the file itself. */
  fileSize: number;
  /** Bytes of the disk it presents. */
  virtualSize: number;
  /** For backing files: the name recorded in the image above, and whether its format was recorded too. */
  backingName?: string;
  formatRecorded?: boolean;
  qcow2?: {
    version: number;
    clusterSize: number;
    compression: Qcow2Compression;
    extendedL2: boolean;
    /** Not closed cleanly (refcounts may be stale; harmless for reading). */
    dirty: boolean;
    /** Marked corrupt by qemu. */
    corrupt: boolean;
    snapshots: number;
  };
}

/** The image and each backing file beneath it, top first. */
export function imageLayers(src: BlockSource): ImageLayer[] {
  const out: ImageLayer[] = [];
  let cur: BlockSource | null = src;
  let link: { name: string; formatRecorded: boolean } | null = null;
  while (cur !== null) {
    const layer: ImageLayer = {
      path: cur.label,
      format: cur instanceof Qcow2Image ? "qcow2" : "raw",
      fileSize: cur instanceof Qcow2Image ? cur.fileSize : cur.size,
      virtualSize: cur.size,
    };
    if (link !== null) {
      layer.backingName = link.name;
      layer.formatRecorded = link.formatRecorded;
    }
    out.push(layer);
    if (!(cur instanceof Qcow2Image)) break;
    const h = cur.header;
    layer.qcow2 = {
      version: h.version,
      clusterSize: h.clusterSize,
      compression: h.compression,
      extendedL2: h.extendedL2,
      dirty: (h.incompatible & INCOMPAT_DIRTY) !== 0,
      corrupt: (h.incompatible & INCOMPAT_CORRUPT) !== 0,
      snapshots: h.nbSnapshots,
    };
    link = cur.backingLink;
    cur = cur.backing;
  }
  return out;
}
