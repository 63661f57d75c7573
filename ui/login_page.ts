/// <reference lib="dom" />
// Where a browser signs in when the node has a password (server/auth.ts).
// The server keeps the sign-in in an HttpOnly cookie, so this page never
// holds more than what is typed.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { fetchJson } from "./api.ts";
import { sentence } from "./remotes.ts";

export type Role = "participant" | "operator";

export interface SessionInfo {
  /** Whether taking part needs a password. */
  passwordRequired: boolean;
  /** Whether managing the node needs one. */
  operatorPasswordRequired: boolean;
  signedIn: boolean;
  /** What this browser may do now; null: nothing yet. */
  role: Role | null;
}

/** Whether `role` may open `page`: the servers list is the operator's. */
export function roleOpens(role: Role | null, page: string): boolean {
  return role === "operator" || (role === "participant" && page !== "servers");
}

/** The page to go to after signing in: only a page name of this UI, so a
 * crafted link cannot send the browser to another site. */
export function nextPage(search: string): string {
  const next = new URLSearchParams(search).get("next") ?? "";
  return /^[a-z]+$/.test(next) && next !== "login" ? next : "sfu";
}

export function LoginPage() {
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [role, setRole] = useState<Role | null>(null);
  const next = nextPage(location.search);

  // Nothing to do here when the node has no password or the browser is
  // already signed in.
  useEffect(() => {
    fetchJson<SessionInfo>("api/session").then((session) => {
      if (roleOpens(session.role, next)) location.replace(next);
      else setRole(session.role);
    }, () => {/* the form still works; submitting says what is wrong */});
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await fetchJson("api/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ password }),
      });
      const session = await fetchJson<SessionInfo>("api/session");
      if (roleOpens(session.role, next)) return location.replace(next);
      setRole(session.role);
      setProblem("That password lets you take part, not manage servers.");
      setBusy(false);
    } catch (error) {
      setProblem(sentence((error as Error).message));
      setBusy(false);
    }
  };

  return html`
    <main class="page login">
      <h1>Sign in</h1>
      <form class="card" onSubmit=${submit}>
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          autofocus
          value=${password}
          aria-describedby=${problem === null ? undefined : "password-problem"}
          aria-invalid=${problem !== null}
          onInput=${(e: Event) =>
            setPassword((e.target as HTMLInputElement).value)}
        />
        ${problem !== null &&
          html`<p id="password-problem" class="field-problem" role="alert">${problem}</p>`}
        <p class="hint">${role === "participant" && !roleOpens(role, next)
          ? "Managing servers needs the operator password."
          : "This Umbrella server needs the password its operator set."}</p>
        <button type="submit" class="primary" disabled=${busy}>
          ${busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  `;
}
