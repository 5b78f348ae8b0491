/**
 * Backlog: when a mount's helper threads read /dev/fuse, and when they are started at all. The first
 * thread's side (busy, afterRead) is driven by hand; helpersWanted() is called as the starting
 * thread's timer would, once per tick.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Backlog } from "../../src/fuse/backlog.ts";

let clients = 100;

/**
 * One request answered by the first thread: `queued` when its read found it waiting; from `client`
 * (a pid), by default another one each time (parallel clients).
 */
function request(first: Backlog, queued: boolean, client = ++clients): void {
  first.afterRead(queued ? 0 : 5, client);
  first.busy(true);
  first.busy(false);
}

/** The tick at which helpersWanted() first says yes (1-based), or 0 within `max` ticks. */
function ticksUntilWanted(starter: Backlog, max: number, between: (tick: number) => void = () => {}): number {
  for (let t = 1; t <= max; t++) {
    between(t);
    if (starter.helpersWanted()) return t;
  }
  return 0;
}

describe("Backlog", () => {
  test("three queued requests in a row ask for help; a wait in between resets the count", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const words = new Int32Array(memory);
    request(first, true);
    request(first, true);
    request(first, false);
    request(first, true);
    request(first, true);
    assert.equal(words[0], 0, "no three in a row yet");
    request(first, true);
    assert.equal(words[0], 1);
  });

  test("queued requests of one client (a fast sequential client such as find) never ask for help", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const starter = new Backlog(memory);
    const words = new Int32Array(memory);
    for (let k = 0; k < 100; k++) request(first, true, 4242);
    assert.equal(words[0], 0);
    // Nor do the kernel's own requests (pid 0, such as a storm of FORGETs), between two clients or not.
    for (let k = 0; k < 100; k++) request(first, true, k % 2 ? 0 : 4242);
    assert.equal(words[0], 0);
    assert.equal(
      ticksUntilWanted(starter, 300, () => {
        for (let k = 0; k < 5; k++) request(first, true, 4242);
      }),
      0,
      "a lasting stream of one client's requests starts no helpers",
    );
    // Two clients interleaving do.
    request(first, true, 1);
    request(first, true, 2);
    request(first, true, 1);
    assert.equal(words[0], 1);
  });

  test("an unused mount starts its helpers after a second of ticks, not before", () => {
    const memory = Backlog.memory();
    const starter = new Backlog(memory);
    assert.equal(ticksUntilWanted(starter, 200), 101, "the first tick only takes a baseline");
  });

  test("a mount answering requests one at a time never starts helpers", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const starter = new Backlog(memory);
    assert.equal(
      ticksUntilWanted(starter, 500, () => request(first, false)),
      0,
    );
  });

  test("bursts of queued requests (a fast single client) do not start helpers; a lasting backlog does", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const starter = new Backlog(memory);
    // 30 ticks with a burst each, then a tick without any request: the count starts over.
    const bursts = (t: number) => {
      if (t % 31 === 0) return;
      for (let k = 0; k < 3; k++) request(first, true);
    };
    assert.equal(ticksUntilWanted(starter, 300, bursts), 0);
    const lasting = new Backlog(memory);
    const t = ticksUntilWanted(lasting, 300, () => {
      for (let k = 0; k < 3; k++) request(first, true);
    });
    assert.equal(t, 51, "50 ticks with a backlog after the baseline");
  });

  test("the first thread stuck in one request starts helpers after 10 ticks", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const starter = new Backlog(memory);
    first.afterRead(5, 1);
    first.busy(true);
    assert.equal(ticksUntilWanted(starter, 50), 11);
    first.busy(false);
  });

  test("a finished mount never starts helpers, and waiting helpers return false", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    const starter = new Backlog(memory);
    first.done();
    assert.equal(starter.isDone, true);
    assert.equal(ticksUntilWanted(starter, 200), 0);
    assert.equal(new Backlog(memory).waitForWork(), false);
  });

  test("an idle helper is called when the first thread is stuck in one request", () => {
    const memory = Backlog.memory();
    const first = new Backlog(memory);
    first.afterRead(5, 1);
    first.busy(true);
    const t0 = performance.now();
    assert.equal(new Backlog(memory).waitForWork(), true);
    assert.ok(performance.now() - t0 < 1000);
    first.busy(false);
  });
});
