import assert from "node:assert/strict";
import { RouteTable } from "../media/route_table.ts";

const track = (path: string[], id = "t1") => ({ id, path });

Deno.test("the shortest path wins; ties go to the lowest link id", () => {
  const table = new RouteTable("B");
  table.learn("link-c", track(["A", "C"]));
  assert.equal(table.best("t1")?.linkId, "link-c");
  const change = table.learn("link-a", track(["A"]));
  assert.equal(change?.before?.linkId, "link-c");
  assert.equal(change?.after?.linkId, "link-a");
  table.learn("link-0", track(["X", "A"], "t2"));
  table.learn("link-9", track(["Y", "A"], "t2"));
  assert.equal(table.best("t2")?.linkId, "link-0");
});

Deno.test("a path through this node is never a route, and replaces what that link offered", () => {
  const table = new RouteTable("B");
  assert.equal(table.learn("link-c", track(["A", "B", "C"])), undefined);
  assert.equal(table.best("t1"), undefined);
  table.learn("link-c", track(["A", "C"]));
  const change = table.learn("link-c", track(["A", "B", "C"]));
  assert.equal(
    change?.after,
    undefined,
    "C now routes through us: no longer a route",
  );
});

Deno.test("losing a link fails over to the remaining path, and back", () => {
  const table = new RouteTable("B");
  table.learn("link-a", track(["A"]));
  table.learn("link-c", track(["A", "C"]));
  const [change] = table.forgetLink("link-a");
  assert.equal(change.after?.linkId, "link-c");
  assert.deepEqual(table.routedOver("link-c"), ["t1"]);
  table.learn("link-a", track(["A"]));
  assert.equal(table.best("t1")?.linkId, "link-a");
  assert.deepEqual(table.forgetLink("link-x"), []);
});

Deno.test("withdrawals remove routes; the last one removes the track", () => {
  const table = new RouteTable("B");
  table.learn("link-a", track(["A"]));
  table.learn("link-c", track(["A", "C"]));
  assert.equal(
    table.forget("link-c", "t1"),
    undefined,
    "the best route did not change",
  );
  const change = table.forget("link-a", "t1");
  assert.equal(change?.before?.linkId, "link-a");
  assert.equal(change?.after, undefined);
  assert.equal(table.forget("link-a", "t1"), undefined);
});

Deno.test("in a cycle every node settles on loop-free routes", () => {
  // Triangle A-B-C; the track starts at A. Simulate announcements until quiet.
  const nodes = ["A", "B", "C"];
  const tables = new Map(
    nodes.map((n) => [n, new RouteTable<{ id: string; path: string[] }>(n)]),
  );
  const links = [["A", "B"], ["B", "C"], ["A", "C"]];
  const neighbours = (n: string) =>
    links.filter((l) => l.includes(n)).map((l) => l.find((x) => x !== n)!);
  const pathAt = (n: string) =>
    n === "A" ? ["A"] : tables.get(n)!.best("t1") &&
      [...tables.get(n)!.best("t1")!.description.path, n];
  for (let round = 0; round < 5; round++) {
    for (const from of nodes) {
      const path = pathAt(from);
      for (const to of neighbours(from)) {
        if (to === "A") continue;
        if (path) tables.get(to)!.learn(`link-${from}`, { id: "t1", path });
        else tables.get(to)!.forget(`link-${from}`, "t1");
      }
    }
  }
  assert.equal(tables.get("B")!.best("t1")?.linkId, "link-A");
  assert.equal(tables.get("C")!.best("t1")?.linkId, "link-A");
  // A-B fails: B must now pull through C, whose route does not pass B.
  tables.get("B")!.forgetLink("link-A");
  assert.equal(tables.get("B")!.best("t1")?.linkId, "link-C");
  assert.deepEqual(tables.get("B")!.best("t1")?.description.path, ["A", "C"]);
});
