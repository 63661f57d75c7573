// The deployment files agree with the program: the Dockerfile copies every
// folder the program is made of (and .dockerignore lets them through), runs
// the bundle with exactly the permissions of `deno task start`, and
// compose.yaml publishes the media ports the image uses. (No Docker engine
// runs on our machines, so the image itself is not built here.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPermissions } from "./support/server.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const read = (file: string) => Deno.readTextFile(join(REPO, file));

/** Top-level files and folders of the repository that main.ts imports. */
async function programParts(): Promise<Set<string>> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
  const info = JSON.parse(new TextDecoder().decode(result.stdout));
  const root = new URL(`file://${REPO}`).href;
  const parts = new Set<string>();
  for (const module of info.modules as { specifier: string }[]) {
    if (module.specifier.startsWith(root)) {
      parts.add(module.specifier.slice(root.length).split("/")[0]);
    }
  }
  return parts;
}

Deno.test("the Dockerfile copies everything the program imports, and .dockerignore lets it through", async () => {
  const dockerfile = await read("Dockerfile");
  const copied = new Set(
    [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => {
      const words = m[1].trim().split(/\s+/);
      return words.slice(0, -1);
    }),
  );
  const ignore = (await read(".dockerignore")).split("\n")
    .filter((line) => line.startsWith("!"))
    .map((line) => line.slice(1).replace(/\/$/, ""));
  const parts = await programParts();
  assert.ok(parts.has("main.ts") && parts.has("server"), [...parts].join());
  for (const part of [...parts, "deno.json", "deno.lock"]) {
    assert.ok(copied.has(part), `the Dockerfile copies ${part}`);
    assert.ok(ignore.includes(part), `.dockerignore lets ${part} through`);
  }
});

Deno.test("the image runs the bundle with the permissions of deno task start", async () => {
  const dockerfile = await read("Dockerfile");
  const entrypoint = JSON.parse(
    /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? "null",
  ) as string[];
  assert.deepEqual(entrypoint.slice(0, 3), ["deno", "run", "--no-config"]);
  assert.equal(entrypoint.at(-1), "/app/umbrella.js");
  assert.deepEqual(
    entrypoint.filter((arg) => arg.startsWith("--allow-")).sort(),
    (await startPermissions()).sort(),
  );
  const config = JSON.parse(await read("deno.json"));
  assert.match(config.tasks.bundle, / -o dist\/umbrella\.js main\.ts$/);
  assert.match(dockerfile, /^COPY --from=build \/src\/dist\/umbrella\.js /m);
});

Deno.test("compose.yaml publishes the media ports the image uses, one to one", async () => {
  const dockerfile = await read("Dockerfile");
  const env = (name: string) =>
    Number(new RegExp(`${name}=(\\d+)`).exec(dockerfile)?.[1]);
  const [min, max] = [env("UMBRELLA_MIN_PORT"), env("UMBRELLA_MAX_PORT")];
  assert.ok(min > 1024 && max > min, `${min}-${max}`);
  assert.match(dockerfile, new RegExp(`^EXPOSE .*${min}-${max}/udp`, "m"));
  const compose = await read("compose.yaml");
  assert.ok(
    compose.includes(`- "${min}-${max}:${min}-${max}/udp"`),
    "the UDP range is published with the same numbers",
  );
  assert.match(compose, /UMBRELLA_PUBLIC_IP: /);
  assert.match(compose, /loadbalancer\.server\.port=8081$/m);
});
