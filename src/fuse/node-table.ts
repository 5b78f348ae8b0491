import { ROOT_ID } from "./protocol.ts";

/**
 * The node ids a FUSE server hands the kernel, and what they stand for. The kernel names every file
 * by the id it got from a LOOKUP (or a READDIRPLUS entry, or a CREATE/MKDIR/SYMLINK reply) and
 * counts how many times it got it (nlookup); FORGET gives those references back.
 */
export interface NodeIds {
  /** The VFS path of a node id; undefined for an id the kernel cannot hold (stale or never given). */
  pathOf(id: number): string | undefined;
  /** The id for `path`, whose node has inode number `ino`, counting one more kernel reference. */
  remember(path: string, ino: number): number;
  /** The kernel dropped `n` references to `id`. */
  forget(id: number, n: number): void;
  /** `from` was renamed to `to` (writable sources): ids keep their node, which now has a new path. */
  moved(from: string, to: string): void;
  /** The name `path` is gone (unlinked or replaced); its id stays valid until forgotten. */
  removed(path: string): void;
}

interface Node {
  id: number;
  path: string;
  ino: number;
  nlookup: number;
  /** Still reachable under `path` (false once unlinked or replaced). */
  named: boolean;
}

function under(path: string, dir: string): boolean {
  return path.length > dir.length && path.startsWith(dir) && path.charCodeAt(dir.length) === 47;
}

/**
 * Node ids for one serving thread over any source, writable ones included. A node is keyed by path
 * while it is reachable there; a name that now holds a different inode (replaced behind the
 * kernel's back, or after an unlink) gets a fresh id, so an id never changes which file it means.
 * Entries go when the kernel forgets them, so memory follows what the kernel caches.
 */
export class NodeTable implements NodeIds {
  private readonly byId = new Map<number, Node>();
  private readonly byPath = new Map<string, Node>();
  private next = ROOT_ID + 1;

  constructor() {
    const root: Node = { id: ROOT_ID, path: "/", ino: 1, nlookup: 1, named: true };
    this.byId.set(ROOT_ID, root);
    this.byPath.set("/", root);
  }

  /** Ids currently known (the root included). */
  get size(): number {
    return this.byId.size;
  }

  pathOf(id: number): string | undefined {
    return this.byId.get(id)?.path;
  }

  /** References the kernel holds to `id` (0 when unknown). */
  lookups(id: number): number {
    return this.byId.get(id)?.nlookup ?? 0;
  }

  remember(path: string, ino: number): number {
    const known = this.byPath.get(path);
    if (known && (known.ino === ino || known.id === ROOT_ID)) {
      known.nlookup++;
      return known.id;
    }
    if (known) this.unname(known);
    const node: Node = { id: this.next++, path, ino, nlookup: 1, named: true };
    this.byId.set(node.id, node);
    this.byPath.set(path, node);
    return node.id;
  }

  forget(id: number, n: number): void {
    if (id === ROOT_ID) return;
    const node = this.byId.get(id);
    if (!node) return;
    node.nlookup -= n;
    if (node.nlookup > 0) return;
    this.byId.delete(id);
    if (node.named && this.byPath.get(node.path) === node) this.byPath.delete(node.path);
  }

  moved(from: string, to: string): void {
    this.removed(to);
    const moving: Node[] = [];
    for (const [p, node] of this.byPath) if (p === from || under(p, from)) moving.push(node);
    for (const node of moving) this.byPath.delete(node.path);
    for (const node of moving) {
      node.path = to + node.path.slice(from.length);
      this.byPath.set(node.path, node);
    }
  }

  removed(path: string): void {
    const node = this.byPath.get(path);
    if (node && node.id !== ROOT_ID) this.unname(node);
  }

  private unname(node: Node): void {
    this.byPath.delete(node.path);
    node.named = false;
  }
}
