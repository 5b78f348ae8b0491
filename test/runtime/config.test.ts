/** The runtime configuration: where it is found, defaults, relative paths, and errors that name the key. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { BfcError } from "../../src/errors.ts";
import { defaultConfig, defaultConfigPath, loadConfig, parseConfig } from "../../src/runtime/config.ts";
import { tempDir } from "../helpers.ts";

const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ HOME: os.homedir(), ...extra });

function rejects(doc: unknown, key: string, what: RegExp): void {
  assert.throws(
    () => parseConfig(doc, "/etc/bfcfs/config.json", env()),
    (e: BfcError) => {
      assert.equal(e.reason, "BAD_CONFIG");
      assert.equal(e.field, key);
      assert.ok(e.message.startsWith(`/etc/bfcfs/config.json: ${key}: `), e.message);
      assert.match(e.message, what);
      return true;
    },
  );
}

describe("runtime configuration", () => {
  it("defaults: bfc backend (zstd 3, quick verify), runc on PATH, XDG directories", () => {
    const c = defaultConfig(env({ XDG_DATA_HOME: "/d", XDG_STATE_HOME: "/s" }));
    assert.equal(c.source, null);
    assert.equal(c.runtimePath, "runc");
    assert.equal(c.defaultBackend, "bfc");
    assert.equal(c.stateDir, "/s/bfcfs/runtime");
    assert.deepEqual(c.backends.bfc, {
      enabled: true,
      containerPath: "/d/bfcfs/containers/bfc",
      compression: "zstd",
      compressionLevel: 3,
      encryption: null,
      verify: "quick",
    });
    assert.deepEqual(c.backends.dir, { enabled: true, containerPath: "/d/bfcfs/containers/dir" });
    assert.equal(defaultConfigPath(env({ XDG_CONFIG_HOME: "/c" })), "/c/bfcfs/config.json");
    assert.equal(defaultConfigPath({ HOME: "/home/u" }).endsWith("/.config/bfcfs/config.json"), true);
  });

  it("reads the design notes' shape; relative paths from the file's folder, ~/ from home", () => {
    const c = parseConfig(
      {
        runtime: {
          backends: {
            bfc: {
              enabled: true,
              container_path: "containers",
              compression: "none",
              compression_level: 19,
              encryption: false,
            },
            dir: { enabled: false, container_path: "~/plain" },
            custom: { anything: 1 },
          },
          runtime_path: "bin/runc",
          state_dir: "/run/bfcfs",
          default_backend: "dir",
          stop_timeout: 0,
          linux_resources: "drop",
        },
      },
      "/etc/bfcfs/config.json",
      env(),
    );
    assert.equal(c.backends.bfc.containerPath, "/etc/bfcfs/containers");
    assert.equal(c.backends.bfc.compression, "none");
    assert.equal(c.backends.bfc.compressionLevel, 19);
    assert.equal(c.backends.dir.enabled, false);
    assert.equal(c.backends.dir.containerPath, path.join(os.homedir(), "plain"));
    assert.deepEqual(c.backends.custom, { anything: 1 });
    assert.equal(c.runtimePath, "/etc/bfcfs/bin/runc");
    assert.equal(c.stateDir, "/run/bfcfs");
    assert.equal(c.defaultBackend, "dir");
    assert.equal(c.stopTimeout, 0);
    assert.equal(c.linuxResources, "drop");
    assert.equal(parseConfig({}, "/x/c.json", env()).runtimePath, "runc", "a bare name stays a PATH lookup");
  });

  it("encryption: a key file, a password file or variable; a password only when marked insecure", () => {
    const enc = (e: unknown) =>
      parseConfig({ runtime: { backends: { bfc: { encryption: e } } } }, "/k/c.json", env()).backends.bfc
        .encryption;
    assert.deepEqual(enc({ key_file: "key" }), { keyFile: "/k/key" });
    assert.deepEqual(enc({ password_file: "/p" }), { passwordFile: "/p" });
    assert.deepEqual(enc({ password_env: "MY_PW" }), { passwordEnv: "MY_PW" });
    assert.deepEqual(enc({ insecure_password: "s3cret" }), { insecurePassword: "s3cret" });
    assert.equal(enc(false), null);
    rejects(
      { runtime: { backends: { bfc: { encryption: true } } } },
      "runtime.backends.bfc.encryption",
      /true needs a key/,
    );
    rejects(
      { runtime: { backends: { bfc: { encryption: { password: "x" } } } } },
      "runtime.backends.bfc.encryption.password",
      /unknown key/,
    );
    rejects(
      { runtime: { backends: { bfc: { encryption: { key_file: "a", password_file: "b" } } } } },
      "runtime.backends.bfc.encryption",
      /exactly one of .* \(got key_file, password_file\)/,
    );
    rejects(
      { runtime: { backends: { bfc: { encryption: { password_env: "1X" } } } } },
      "runtime.backends.bfc.encryption.password_env",
      /environment variable name/,
    );
  });

  it("every bad value is reported with its key", () => {
    rejects([], "(document)", /must be an object/);
    rejects({ runtim: {} }, "runtim", /unknown key \(allowed here: runtime\)/);
    rejects(
      { runtime: { backends: { bfc: { compresion: "zstd" } } } },
      "runtime.backends.bfc.compresion",
      /unknown key \(allowed here: enabled, container_path, compression, compression_level, encryption, verify\)/,
    );
    rejects(
      { runtime: { backends: { bfc: { compression: "lz4" } } } },
      "runtime.backends.bfc.compression",
      /one of none, zstd, auto, got "lz4"/,
    );
    rejects(
      { runtime: { backends: { bfc: { compression_level: 0 } } } },
      "runtime.backends.bfc.compression_level",
      /from 1 to 22, got 0/,
    );
    rejects(
      { runtime: { backends: { bfc: { compression_level: 2.5 } } } },
      "runtime.backends.bfc.compression_level",
      /whole number/,
    );
    rejects(
      { runtime: { backends: { bfc: { enabled: "yes" } } } },
      "runtime.backends.bfc.enabled",
      /true or false, got "yes"/,
    );
    rejects(
      { runtime: { backends: { bfc: { verify: "full" } } } },
      "runtime.backends.bfc.verify",
      /one of none, quick, deep/,
    );
    rejects(
      { runtime: { backends: { dir: { compression: "zstd" } } } },
      "runtime.backends.dir.compression",
      /unknown key \(allowed here: enabled, container_path\)/,
    );
    rejects({ runtime: { backends: { other: 3 } } }, "runtime.backends.other", /must be an object/);
    rejects({ runtime: { backends: [] } }, "runtime.backends", /must be an object/);
    rejects({ runtime: { runtime_path: "" } }, "runtime.runtime_path", /non-empty string/);
    rejects({ runtime: { stop_timeout: -1 } }, "runtime.stop_timeout", /from 0 to 3600/);
    rejects({ runtime: { linux_resources: "remove" } }, "runtime.linux_resources", /one of keep, drop/);
    rejects(
      { runtime: { backends: { bfc: { container_path: "/same" }, dir: { container_path: "/same" } } } },
      "runtime.backends.dir.container_path",
      /must differ from the bfc backend's/,
    );
  });

  it("--config, else $BFC_CONFIG, else the per-user file; defaults only when that one is absent", () => {
    const dir = tempDir("bfc-config-");
    const write = (name: string, doc: unknown) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, typeof doc === "string" ? doc : JSON.stringify(doc));
      return f;
    };
    const explicit = write("explicit.json", { runtime: { default_backend: "explicit" } });
    const fromEnv = write("env.json", { runtime: { default_backend: "env" } });
    fs.mkdirSync(path.join(dir, "xdg", "bfcfs"), { recursive: true });
    write("xdg/bfcfs/config.json", { runtime: { default_backend: "user" } });
    const e = env({ BFC_CONFIG: fromEnv, XDG_CONFIG_HOME: path.join(dir, "xdg") });
    assert.equal(loadConfig({ file: explicit, env: e }).defaultBackend, "explicit");
    assert.equal(loadConfig({ env: e }).defaultBackend, "env");
    assert.equal(loadConfig({ env: { ...e, BFC_CONFIG: "" } }).defaultBackend, "user");
    const none = loadConfig({ env: env({ XDG_CONFIG_HOME: path.join(dir, "nothing") }) });
    assert.equal(none.source, null);
    assert.equal(none.defaultBackend, "bfc");
    assert.throws(
      () => loadConfig({ file: path.join(dir, "absent.json"), env: e }),
      /cannot read config file '.*absent\.json'/,
    );
    assert.throws(
      () => loadConfig({ env: env({ BFC_CONFIG: path.join(dir, "gone.json") }) }),
      /cannot read config file '.*gone\.json' \(from \$BFC_CONFIG\)/,
    );
    const broken = write("broken.json", "{ nope");
    assert.throws(
      () => loadConfig({ file: broken, env: e }),
      (err: BfcError) => {
        assert.equal(err.reason, "BAD_CONFIG");
        assert.match(err.message, /broken\.json: not valid JSON/);
        return true;
      },
    );
  });
});
