// A real RTSP camera for tests: GStreamer's RTSP server (rtsp_camera.py) on
// 127.0.0.1, with a choice of authentication, codecs and mount path. It can
// be stopped and started again on the same port, as a rebooting camera.
import { fileURLToPath as fromFileUrl } from "node:url";

const SCRIPT = fromFileUrl(new URL("./rtsp_camera.py", import.meta.url));
const PYTHON = "/usr/bin/python3";

export interface RtspCameraOptions {
  mount?: string;
  auth?: "none" | "basic" | "digest";
  user?: string;
  password?: string;
  /** "h264-sprop-only" sends SPS/PPS only in the SDP, never in-band. */
  video?: "h264" | "h264-sprop-only" | "h265";
  audio?: "none" | "pcmu" | "pcma" | "opus" | "aac";
  /** Frames between keyframes (25 fps). */
  gop?: number;
  kbps?: number;
  /** rtph264pay's MTU: above 1200 makes single NAL packets WebRTC must split. */
  mtu?: number;
}

export class RtspCamera {
  readonly options: RtspCameraOptions;
  port = 0;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #output = "";

  constructor(options: RtspCameraOptions) {
    this.options = options;
  }

  /** The camera's URL; credentials default to the right ones. */
  url(
    credentials: { user: string; password: string } | null = {
      user: this.options.user ?? "admin",
      password: this.options.password ?? "secret",
    },
    mount = this.options.mount ?? "/stream",
  ): string {
    const auth = credentials && (this.options.auth ?? "none") !== "none"
      ? `${encodeURIComponent(credentials.user)}:${
        encodeURIComponent(credentials.password)
      }@`
      : "";
    return `rtsp://${auth}127.0.0.1:${this.port}${mount}`;
  }

  /** Starts the server (on its previous port after a stop). */
  async start(): Promise<void> {
    if (this.#child) throw new Error("the camera is already running");
    const o = this.options;
    const args = [
      SCRIPT,
      "--port",
      String(this.port),
      "--mount",
      o.mount ?? "/stream",
      "--auth",
      o.auth ?? "none",
      "--user",
      o.user ?? "admin",
      "--password",
      o.password ?? "secret",
      "--video",
      o.video ?? "h264",
      "--audio",
      o.audio ?? "none",
      "--gop",
      String(o.gop ?? 25),
      "--kbps",
      String(o.kbps ?? 800),
      "--mtu",
      String(o.mtu ?? 1400),
    ];
    // Binding the old port can fail for a moment after a stop.
    for (let attempt = 0;; attempt++) {
      try {
        await this.#spawn(args);
        return;
      } catch (error) {
        if (this.port === 0 || attempt >= 10) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
  }

  async #spawn(args: string[]): Promise<void> {
    const child = new Deno.Command(PYTHON, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#output = "";
    const ready = Promise.withResolvers<number>();
    const decoder = new TextDecoder();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) {
        this.#output += decoder.decode(chunk, { stream: true });
        const match = /READY (\d+)/.exec(this.#output);
        if (match) ready.resolve(Number(match[1]));
      }
    };
    const drained = Promise.all([
      collect(child.stdout),
      collect(child.stderr),
    ]);
    const exited = child.status.then(async (status) => {
      await drained;
      ready.reject(
        new Error(
          `the RTSP camera exited (${status.code}): ${this.#output.trim()}`,
        ),
      );
    });
    const timer = setTimeout(
      () => ready.reject(new Error("the RTSP camera did not start in 15 s")),
      15_000,
    );
    try {
      this.port = await ready.promise;
      this.#child = child;
      this.#exited = exited;
    } catch (error) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await exited;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the server at once, as a power cut would. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

export async function startRtspCamera(
  options: RtspCameraOptions = {},
): Promise<RtspCamera> {
  const camera = new RtspCamera(options);
  await camera.start();
  return camera;
}
