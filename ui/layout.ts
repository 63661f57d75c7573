/// <reference lib="dom" />
import type { ComponentChildren } from "preact";
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { fetchJson } from "./api.ts";
import type { SessionInfo } from "./login_page.ts";

const PAGES = [
  { name: "sfu", title: "Call" },
  { name: "status", title: "Status" },
  { name: "servers", title: "Servers" },
];

/** The bar on top of every page. Links are relative so they stay under the
 * server's HTTP prefix. */
export function Layout(
  { page, children }: { page: string; children: ComponentChildren },
) {
  return html`
    <header class="topbar">
      <a class="brand" href="sfu">
        <img src="favicon.svg" alt="" width="28" height="28" />
        <span>Umbrella</span>
      </a>
      ${page !== "login" && html`
        <nav aria-label="Pages">
          ${PAGES.map(({ name, title }) =>
            html`
              <a href=${name} aria-current=${name === page
                ? "page"
                : undefined}>${title}</a>
            `
          )}
          <${SignOut} />
        </nav>
      `}
    </header>
    ${children}
  `;
}

/** Shown only where this browser signed in. */
function SignOut() {
  const [shown, setShown] = useState(false);
  useEffect(() => {
    fetchJson<SessionInfo>("api/session").then(
      (session) => setShown(session.signedIn),
      () => {/* no button is the safe default */},
    );
  }, []);
  if (!shown) return null;
  const signOut = async () => {
    await fetchJson("api/logout", { method: "POST" }).catch(() => {});
    location.assign("login");
  };
  return html`<button type="button" class="link" onClick=${signOut}>Sign out</button>`;
}

export function NotFound() {
  return html`
    <main class="page">
      <h1>Page not found</h1>
      <p>Try the <a href="sfu">call</a>, the <a href="status">status</a> or the <a
        href="servers"
      >servers</a> page.</p>
    </main>
  `;
}
