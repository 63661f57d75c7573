/// <reference lib="dom" />
// Entry point of the browser bundle: one bundle serves every page, picked
// by the last segment of the address.
import { render } from "preact";
import { html } from "htm/preact";
import { pageName } from "./format.ts";
import { Layout, NotFound } from "./layout.ts";
import { LoginPage } from "./login_page.ts";
import { ServersPage } from "./servers_page.ts";
import { SfuPage } from "./sfu_page.ts";
import { StatusPage } from "./status_page.ts";

const PAGES = new Map([
  ["sfu", SfuPage],
  ["status", StatusPage],
  ["servers", ServersPage],
  ["login", LoginPage],
]);

const page = pageName(location.pathname);
const Page = PAGES.get(page) ?? NotFound;
render(
  html`
    <${Layout} page=${page}>
      <${Page} />
      </${Layout}>
  `,
  document.getElementById("app")!,
);
