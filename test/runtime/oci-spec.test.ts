/** OCI bundle checks: config.json problems named by their JSON path, container ids, the bundle for runc. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { BfcError } from "../../src/errors.ts";
import { runtimeConfig } from "../../src/runtime/lifecycle.ts";
import { checkId, type OciConfig, readBundle, validateOciConfig } from "../../src/runtime/oci-spec.ts";
import { tempDir } from "../helpers.ts";
import { ociConfig } from "./runtime-helpers.ts";

const base = () =>
  ociConfig(["sh", "-c", "echo hi"]) as Record<string, unknown> & { process: Record<string, unknown> };

function refused(doc: unknown, at: string, what: RegExp): void {
  assert.throws(
    () => validateOciConfig(doc, "b/config.json"),
    (e: BfcError) => {
      assert.equal(e.reason, "BAD_BUNDLE");
      assert.equal(e.field, at);
      assert.ok(e.message.startsWith(`b/config.json: ${at}: `), e.message);
      assert.match(e.message, what);
      return true;
    },
  );
}

describe("OCI config.json validation", () => {
  it("accepts runc's default shape and extra fields", () => {
    const c = validateOciConfig({ ...base(), extra: { anything: true } });
    assert.equal(c.root.path, "rootfs");
    assert.deepEqual(c.process.args, ["sh", "-c", "echo hi"]);
  });

  it("names the JSON path of each problem", () => {
    const b = base();
    refused(null, "(document)", /must be an object/);
    refused({ ...b, ociVersion: undefined }, "ociVersion", /is required/);
    refused({ ...b, ociVersion: "1.0" }, "ociVersion", /SemVer/);
    refused({ ...b, ociVersion: "0.9.0" }, "ociVersion", /not supported/);
    refused({ ...b, root: undefined }, "root", /is required/);
    refused({ ...b, root: { path: "" } }, "root.path", /must not be empty/);
    refused({ ...b, root: { path: "r", readonly: "no" } }, "root.readonly", /true or false/);
    refused({ ...b, process: undefined }, "process", /is required/);
    refused({ ...b, process: { ...b.process, args: undefined } }, "process.args", /is required/);
    refused({ ...b, process: { ...b.process, args: "sh" } }, "process.args", /must be an array, got "sh"/);
    refused({ ...b, process: { ...b.process, args: [] } }, "process.args", /must not be empty/);
    refused({ ...b, process: { ...b.process, args: ["", "x"] } }, "process.args[0]", /program/);
    refused(
      { ...b, process: { ...b.process, args: ["sh", null] } },
      "process.args[1]",
      /must be a string, got null/,
    );
    refused({ ...b, process: { ...b.process, cwd: undefined } }, "process.cwd", /is required/);
    refused({ ...b, process: { ...b.process, cwd: "home" } }, "process.cwd", /absolute path/);
    refused(
      { ...b, process: { ...b.process, env: ["PATH=/bin", "NOVALUE"] } },
      "process.env[1]",
      /KEY=VALUE/,
    );
    refused({ ...b, process: { ...b.process, terminal: 1 } }, "process.terminal", /true or false/);
    refused(
      { ...b, process: { ...b.process, user: { uid: -1, gid: 0 } } },
      "process.user.uid",
      /whole number/,
    );
    refused({ ...b, hostname: 7 }, "hostname", /must be a string/);
    refused({ ...b, mounts: {} }, "mounts", /must be an array/);
    refused(
      { ...b, mounts: [{ destination: "/proc" }, { type: "tmpfs" }] },
      "mounts[1].destination",
      /is required/,
    );
    refused(
      { ...b, mounts: [{ destination: "/x", options: ["ro", 1] }] },
      "mounts[0].options[1]",
      /must be a string/,
    );
    refused({ ...b, annotations: { a: 1 } }, "annotations.a", /must be a string/);
    refused(
      { ...b, linux: { namespaces: [{ type: "pid" }, { type: "pid" }] } },
      "linux.namespaces[1].type",
      /listed twice/,
    );
    refused(
      { ...b, linux: { namespaces: [{ type: "mount", path: "ns" }] } },
      "linux.namespaces[0].path",
      /absolute/,
    );
    refused(
      { ...b, linux: { namespaces: [{ type: "net" }] } },
      "linux.namespaces[0].type",
      /unknown namespace "net"/,
    );
    refused({ ...b, linux: { resources: [] } }, "linux.resources", /must be an object/);
  });

  it("random damage to a valid config is accepted or refused with BAD_BUNDLE, never another error", () => {
    const paths = [
      ["ociVersion"],
      ["root"],
      ["root", "path"],
      ["process"],
      ["process", "args"],
      ["process", "cwd"],
      ["process", "env"],
      ["process", "user"],
      ["mounts"],
      ["linux"],
      ["linux", "namespaces"],
      ["annotations"],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (at, value) => {
        const doc = structuredClone(base()) as Record<string, unknown>;
        let o = doc;
        for (const k of at.slice(0, -1)) o = (o[k] ?? {}) as Record<string, unknown>;
        o[at.at(-1) as string] = value;
        try {
          validateOciConfig(doc);
        } catch (e) {
          assert.ok(e instanceof BfcError && e.reason === "BAD_BUNDLE", String(e));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("container ids: letters, digits, _ . -, not starting with a separator, at most 64", () => {
    for (const ok of ["a", "web-1", "A.b_c", "0", "x".repeat(64)]) assert.equal(checkId(ok), ok);
    for (const bad of ["", ".", "..", "-a", ".hidden", "a/b", "../x", "a b", "é", "x".repeat(65)]) {
      assert.throws(() => checkId(bad), /invalid container id/, bad);
    }
  });

  it("readBundle: config.json, its root.path resolved against the bundle, a directory", () => {
    const dir = tempDir("bfc-bundle-");
    assert.throws(() => readBundle(path.join(dir, "none")), /bundle '.*none' does not exist/);
    assert.throws(() => readBundle(dir), /has no config\.json/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...base(), root: { path: "fs" } }));
    assert.throws(() => readBundle(dir), /root\.path: the root filesystem '.*\/fs' does not exist/);
    fs.writeFileSync(path.join(dir, "fs"), "");
    assert.throws(() => readBundle(dir), /is not a directory/);
    fs.rmSync(path.join(dir, "fs"));
    fs.mkdirSync(path.join(dir, "fs"));
    const b = readBundle(dir);
    assert.equal(b.rootfs, path.join(dir, "fs"));
    assert.equal(b.dir, dir);
  });

  it("the bundle handed to runc: root.path the overlay, no terminal, linux.resources kept or dropped", () => {
    const c = validateOciConfig({ ...base(), process: { ...base().process, terminal: true } });
    const kept = runtimeConfig(c, "/state/x/rootfs", "keep");
    assert.deepEqual(kept.root, { path: "/state/x/rootfs", readonly: false });
    assert.equal(kept.process.terminal, false);
    assert.deepEqual(kept.linux?.resources, { devices: [{ allow: false, access: "rwm" }] });
    const dropped = runtimeConfig(c, "/r", "drop") as OciConfig;
    assert.equal(dropped.linux?.resources, undefined);
    assert.deepEqual(dropped.linux?.namespaces, c.linux?.namespaces);
    assert.equal(c.process.terminal, true, "the stored config is not changed");
  });
});
