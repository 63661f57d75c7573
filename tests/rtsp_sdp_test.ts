import assert from "node:assert/strict";
import { RtspProtocolError } from "../media/rtsp/message.ts";
import {
  describeAudioSupport,
  describeVideoSupport,
  parseSdp,
  parseSpropParameterSets,
  resolveControlUrl,
  type SdpMedia,
  type SdpSession,
} from "../media/rtsp/sdp.ts";

const crlf = (lines: string[]) => lines.join("\r\n") + "\r\n";

// Captured from the GStreamer RTSP server (gst-rtsp-server 1.22) on loopback,
// Content-Base rtsp://127.0.0.1:18554/cam/.
const GSTREAMER = crlf([
  "v=0",
  "o=- 13250949239052163749 1 IN IP4 127.0.0.1",
  "s=Session streamed with GStreamer",
  "i=rtsp-server",
  "t=0 0",
  "a=tool:GStreamer",
  "a=type:broadcast",
  "a=control:*",
  "a=range:npt=now-",
  "m=video 0 RTP/AVP 96",
  "c=IN IP4 0.0.0.0",
  "b=AS:2097",
  "a=rtpmap:96 H264/90000",
  "a=framerate:25",
  "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFdoFB+wFqDAwNSgAAAMACAAAAwGUeLF1,aM48gA==;profile-level-id=42c015;level-asymmetry-allowed=1",
  "a=control:stream=0",
  "a=ts-refclk:local",
  "a=mediaclk:sender",
  "a=ssrc:2045754595 cname:user396135974@host-8016e823",
  "m=audio 0 RTP/AVP 0",
  "c=IN IP4 0.0.0.0",
  "b=AS:64",
  "a=rtpmap:0 PCMU/8000",
  "a=control:stream=1",
  "a=ts-refclk:local",
  "a=mediaclk:sender",
  "a=ssrc:4121988175 cname:user396135974@host-8016e823",
]);

// Hikvision style: relative trackID controls resolved against Content-Base,
// "; " between fmtp parameters, PCMA audio with the static payload type.
const HIKVISION = crlf([
  "v=0",
  "o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64",
  "s=Media Presentation",
  "e=NONE",
  "b=AS:5050",
  "t=0 0",
  "a=control:*",
  "m=video 0 RTP/AVP 96",
  "c=IN IP4 0.0.0.0",
  "b=AS:5000",
  "a=recvonly",
  "a=x-dimensions:1920,1080",
  "a=control:trackID=1",
  "a=rtpmap:96 H264/90000",
  "a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA==",
  "m=audio 0 RTP/AVP 8",
  "c=IN IP4 0.0.0.0",
  "b=AS:50",
  "a=recvonly",
  "a=control:trackID=2",
  "a=rtpmap:8 PCMA/8000",
  "a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000000000000000000000;",
  "a=appversion:1.0",
]);

// Axis style: absolute controls with the query after the stream path, and
// AAC audio that browsers cannot play.
const AXIS = crlf([
  "v=0",
  "o=- 1581081698536853 1 IN IP4 192.168.0.90",
  "s=Session streamed with GStreamer",
  "i=rtsp-server",
  "e=NONE",
  "t=0 0",
  "a=tool:GStreamer",
  "a=type:broadcast",
  "a=range:npt=now-",
  "a=control:rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264&resolution=640x480",
  "m=video 0 RTP/AVP 96",
  "c=IN IP4 0.0.0.0",
  "b=AS:50000",
  "a=rtpmap:96 H264/90000",
  "a=fmtp:96 packetization-mode=1;profile-level-id=4d0029;sprop-parameter-sets=Z00AKeKQFAe2AtwEBAaQeJEV,aO48gA==",
  "a=ts-refclk:local",
  "a=mediaclk:sender",
  "a=recvonly",
  "a=control:rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264&resolution=640x480",
  "a=framerate:30.000000",
  "a=transform:1.000000,0.000000,0.000000;0.000000,1.000000,0.000000;0.000000,0.000000,1.000000",
  "m=audio 0 RTP/AVP 97",
  "c=IN IP4 0.0.0.0",
  "b=AS:32",
  "a=rtpmap:97 MPEG4-GENERIC/16000/1",
  "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizeLength=13;indexLength=3;indexDeltaLength=3;",
  "a=control:rtsp://192.168.0.90/axis-media/media.amp/stream=1?videocodec=h264&resolution=640x480",
]);

// Dahua style: relative controls against a Content-Base that ends in a
// query plus '/', attributes in unusual order, no c= in media sections.
const DAHUA = crlf([
  "v=0",
  "o=- 2251938202 2251938202 IN IP4 0.0.0.0",
  "s=Media Server",
  "c=IN IP4 0.0.0.0",
  "t=0 0",
  "a=control:*",
  "a=packetization-supported:DH",
  "a=rtppayload-supported:DH",
  "a=range:npt=now-",
  "m=video 0 RTP/AVP 96",
  "a=control:trackID=0",
  "a=framerate:25.000000",
  "a=rtpmap:96 H264/90000",
  "a=fmtp:96 packetization-mode=1;profile-level-id=4D002A;sprop-parameter-sets=Z00AKpY1QPAET8s3AQEBQAABwgAAV+QB,aO4xsg==",
  "a=recvonly",
  "m=audio 0 RTP/AVP 8",
  "a=control:trackID=1",
  "a=rtpmap:8 PCMA/8000",
  "a=recvonly",
]);

// Reolink/NVR style: absolute control URLs, H.265 video, AAC audio.
const REOLINK_H265 = crlf([
  "v=0",
  "o=- 1680000000000000 1 IN IP4 192.168.1.50",
  's=Session streamed by "preview"',
  "i=h265_main",
  "t=0 0",
  "a=tool:LIVE555 Streaming Media v2013.04.08",
  "a=type:broadcast",
  "a=control:rtsp://192.168.1.50:554/h265Preview_01_main/",
  "a=range:npt=0-",
  "m=video 0 RTP/AVP 96",
  "c=IN IP4 0.0.0.0",
  "b=AS:8192",
  "a=rtpmap:96 H265/90000",
  "a=fmtp:96 profile-space=0;profile-id=1;tier-flag=0;level-id=150;sprop-vps=QAEMAf//AWAAAAMAAAMAAAMAAAMAlqwJ;sprop-sps=QgEBAWAAAAMAAAMAAAMAAAMAeKADwIAQ5Y2uSTJrlnAIAAADAAgAAAMAyEA=;sprop-pps=RAHA8vA8kAA=",
  "a=control:rtsp://192.168.1.50:554/h265Preview_01_main/track1",
  "m=audio 0 RTP/AVP 97",
  "c=IN IP4 0.0.0.0",
  "b=AS:8192",
  "a=rtpmap:97 MPEG4-GENERIC/16000",
  "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408",
  "a=control:rtsp://192.168.1.50:554/h265Preview_01_main/track2",
]);

// A cheap camera streaming MJPEG with the static payload type and Opus audio.
const MJPEG_OPUS = "v=0\no=- 0 0 IN IP4 10.0.0.9\ns=cam\nt=0 0\n" +
  "m=video 0 RTP/AVP 26\na=control:video\n" +
  "m=audio 0 RTP/AVP 111\na=rtpmap:111 opus/48000/2\na=fmtp:111 stereo=1; useinbandfec=1\na=control:audio\n";

function expectProtocolError(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof RtspProtocolError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

/** Parses and returns nothing but RtspProtocolError, whatever the input. */
function parseOrProtocolError(
  text: string | Uint8Array,
): SdpSession | undefined {
  try {
    return parseSdp(text);
  } catch (error) {
    assert.ok(error instanceof RtspProtocolError, String(error));
    return undefined;
  }
}

Deno.test("GStreamer: H.264 and PCMU with relative controls", () => {
  const sdp = parseSdp(GSTREAMER);
  assert.equal(sdp.sessionControl, "*");
  assert.deepEqual(sdp.skipped, []);
  assert.deepEqual(sdp.media, [
    {
      kind: "video",
      payloadType: 96,
      encoding: "H264",
      clockRate: 90000,
      fmtp: new Map([
        ["packetization-mode", "1"],
        [
          "sprop-parameter-sets",
          "Z0LAFdoFB+wFqDAwNSgAAAMACAAAAwGUeLF1,aM48gA==",
        ],
        ["profile-level-id", "42c015"],
        ["level-asymmetry-allowed", "1"],
      ]),
      control: "stream=0",
    },
    {
      kind: "audio",
      payloadType: 0,
      encoding: "PCMU",
      clockRate: 8000,
      fmtp: new Map(),
      control: "stream=1",
    },
  ]);
  const base = "rtsp://127.0.0.1:18554/cam/";
  assert.equal(
    resolveControlUrl(base, sdp.media[0].control!),
    "rtsp://127.0.0.1:18554/cam/stream=0",
  );
  assert.equal(resolveControlUrl(base, sdp.sessionControl!), base);
  assert.deepEqual(describeVideoSupport(sdp.media[0]), {
    ok: true,
    mimeType: "video/H264",
  });
  assert.deepEqual(describeAudioSupport(sdp.media[1]), {
    ok: true,
    mimeType: "audio/PCMU",
  });
  const [sps, pps] = parseSpropParameterSets(
    sdp.media[0].fmtp.get("sprop-parameter-sets")!,
  );
  assert.equal(sps[0] & 0x1f, 7);
  assert.equal(pps[0] & 0x1f, 8);
  assert.equal(sps.length, 27);
});

Deno.test("Hikvision: trackID controls under Content-Base, PCMA without channels", () => {
  const sdp = parseSdp(HIKVISION);
  assert.deepEqual(
    sdp.media.map((
      media,
    ) => [media.kind, media.encoding, media.payloadType, media.control]),
    [
      ["video", "H264", 96, "trackID=1"],
      ["audio", "PCMA", 8, "trackID=2"],
    ],
  );
  const video = sdp.media[0];
  assert.equal(video.fmtp.get("packetization-mode"), "1");
  assert.equal(video.fmtp.get("profile-level-id"), "420029");
  assert.equal(
    parseSpropParameterSets(video.fmtp.get("sprop-parameter-sets")!).length,
    2,
  );
  assert.equal(sdp.media[1].channels, undefined);
  assert.deepEqual(describeAudioSupport(sdp.media[1]), {
    ok: true,
    mimeType: "audio/PCMA",
  });
  const base = "rtsp://192.168.1.64:554/Streaming/Channels/101/";
  assert.equal(
    resolveControlUrl(base, "trackID=1"),
    "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1",
  );
  // Without Content-Base the request URL is the base and has no trailing slash.
  assert.equal(
    resolveControlUrl(
      "rtsp://192.168.1.64:554/Streaming/Channels/101",
      "trackID=2",
    ),
    "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2",
  );
});

Deno.test("Axis: absolute controls, AAC audio skipped with a reason", () => {
  const sdp = parseSdp(AXIS);
  assert.equal(
    sdp.sessionControl,
    "rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264&resolution=640x480",
  );
  const [video, audio] = sdp.media;
  assert.equal(
    resolveControlUrl("rtsp://ignored/", video.control!),
    "rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264&resolution=640x480",
  );
  assert.deepEqual(describeVideoSupport(video), {
    ok: true,
    mimeType: "video/H264",
  });
  assert.equal(audio.encoding, "MPEG4-GENERIC");
  assert.equal(audio.clockRate, 16000);
  assert.equal(audio.channels, 1);
  assert.equal(audio.fmtp.get("sizelength"), "13");
  assert.equal(audio.fmtp.get("config"), "1408");
  const support = describeAudioSupport(audio);
  assert.equal(support.ok, false);
  assert.match(
    !support.ok ? support.reason : "",
    /^AAC \(MPEG4-GENERIC\) audio cannot be played by browsers over WebRTC; audio is skipped/,
  );
});

Deno.test("Dahua: relative controls appended after a Content-Base with a query", () => {
  const sdp = parseSdp(DAHUA);
  const base = "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/";
  assert.deepEqual(
    sdp.media.map((media) => resolveControlUrl(base, media.control!)),
    [
      "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/trackID=0",
      "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/trackID=1",
    ],
  );
  assert.equal(resolveControlUrl(base, sdp.sessionControl!), base);
  assert.equal(sdp.media[0].fmtp.get("profile-level-id"), "4D002A");
});

Deno.test("Reolink: H.265 is refused with advice, AAC skipped, controls absolute", () => {
  const sdp = parseSdp(REOLINK_H265);
  const [video, audio] = sdp.media;
  assert.equal(video.encoding, "H265");
  assert.equal(video.fmtp.get("sprop-pps"), "RAHA8vA8kAA=");
  assert.deepEqual(describeVideoSupport(video), {
    ok: false,
    reason: "H.265 video is not supported: set the camera's stream to H.264",
  });
  assert.equal(audio.channels, undefined);
  assert.equal(describeAudioSupport(audio).ok, false);
  assert.equal(
    resolveControlUrl(
      "rtsp://192.168.1.50:554/h265Preview_01_main/",
      video.control!,
    ),
    "rtsp://192.168.1.50:554/h265Preview_01_main/track1",
  );
  // The H.265 parameter sets decode with the same helper.
  assert.equal(
    parseSpropParameterSets(video.fmtp.get("sprop-vps")!)[0][0] >> 1,
    32,
  );
});

Deno.test("MJPEG via static payload type 26 and Opus in lower case, LF line endings", () => {
  const sdp = parseSdp(MJPEG_OPUS);
  const [video, audio] = sdp.media;
  assert.deepEqual([video.encoding, video.clockRate, video.payloadType], [
    "JPEG",
    90000,
    26,
  ]);
  assert.deepEqual(describeVideoSupport(video), {
    ok: false,
    reason: "MJPEG video is not supported: set the camera's stream to H.264",
  });
  assert.deepEqual([audio.encoding, audio.clockRate, audio.channels], [
    "opus",
    48000,
    2,
  ]);
  assert.equal(audio.fmtp.get("useinbandfec"), "1");
  assert.deepEqual(describeAudioSupport(audio), {
    ok: true,
    mimeType: "audio/opus",
  });
  assert.equal(sdp.sessionControl, undefined);
});

Deno.test("support verdicts in plain words for what browsers cannot take", () => {
  const media = (
    kind: string,
    encoding: string,
    clockRate: number,
    extra: Partial<SdpMedia> = {},
  ): SdpMedia => ({
    kind,
    payloadType: 96,
    encoding,
    clockRate,
    fmtp: new Map(),
    ...extra,
  });
  const reason = (support: { ok: boolean; reason?: string }) =>
    support.ok ? "ok" : support.reason;
  assert.equal(
    reason(describeVideoSupport(media("video", "MP4V-ES", 90000))),
    "MPEG-4 Part 2 video is not supported: set the camera's stream to H.264",
  );
  assert.equal(
    reason(describeVideoSupport(media("video", "VP8", 90000))),
    "VP8 video is not supported: set the camera's stream to H.264",
  );
  assert.match(
    reason(
      describeVideoSupport(
        media("video", "H264", 90000, {
          fmtp: new Map([["packetization-mode", "2"]]),
        }),
      ),
    )!,
    /packetization-mode=2 is not supported/,
  );
  assert.match(
    reason(describeVideoSupport(media("video", "H264", 8000)))!,
    /must be 90000/,
  );
  assert.equal(
    reason(describeVideoSupport(media("audio", "H264", 90000))),
    "not a video stream (m=audio)",
  );
  assert.equal(
    reason(describeAudioSupport(media("video", "PCMU", 8000))),
    "not an audio stream (m=video)",
  );
  assert.match(
    reason(describeAudioSupport(media("audio", "G726-32", 8000)))!,
    /^G\.726 audio cannot be played/,
  );
  assert.match(
    reason(describeAudioSupport(media("audio", "MP4A-LATM", 44100)))!,
    /^AAC \(MP4A-LATM\)/,
  );
  assert.match(
    reason(describeAudioSupport(media("audio", "PCMU", 16000)))!,
    /PCMU audio at 16000 Hz .* 8000 Hz mono/,
  );
  assert.match(
    reason(
      describeAudioSupport(media("audio", "PCMA", 8000, { channels: 2 })),
    )!,
    /2 channels/,
  );
  assert.match(
    reason(describeAudioSupport(media("audio", "opus", 8000)))!,
    /must be 48000/,
  );
  assert.match(
    reason(describeAudioSupport(media("audio", "L16", 44100)))!,
    /skipped/,
  );
});

Deno.test("resolveControlUrl: '*', absolute, absolute-path, query and slash rules", () => {
  const base = "rtsp://cam:554/live";
  assert.equal(resolveControlUrl(base, "*"), base);
  assert.equal(resolveControlUrl(base, ""), base);
  assert.equal(
    resolveControlUrl(base, "  track1 "),
    "rtsp://cam:554/live/track1",
  );
  assert.equal(
    resolveControlUrl(`${base}/`, "track1"),
    "rtsp://cam:554/live/track1",
  );
  assert.equal(
    resolveControlUrl(base, "?ctype=video"),
    "rtsp://cam:554/live?ctype=video",
  );
  assert.equal(
    resolveControlUrl(base, "/other/track1"),
    "rtsp://cam:554/other/track1",
  );
  assert.equal(
    resolveControlUrl(base, "RTSP://10.0.0.1/x/trackID=3"),
    "RTSP://10.0.0.1/x/trackID=3",
  );
  assert.equal(
    resolveControlUrl(base, "rtsps://10.0.0.1/y"),
    "rtsps://10.0.0.1/y",
  );
});

Deno.test("resolveControlUrl refuses controls that are not rtsp or would break a request line", () => {
  expectProtocolError(
    () => resolveControlUrl("rtsp://cam/", "http://evil/x"),
    /is not rtsp:\/\//,
  );
  expectProtocolError(
    () => resolveControlUrl("rtsp://cam/", "file:///etc/passwd"),
    /is not rtsp:\/\//,
  );
  expectProtocolError(
    () => resolveControlUrl("rtsp://cam/", "track 1"),
    /whitespace or control/,
  );
  expectProtocolError(
    () => resolveControlUrl("rtsp://cam/", "track\u00011"),
    /whitespace or control/,
  );
  expectProtocolError(
    () => resolveControlUrl("not a url", "/x"),
    /cannot resolve control/,
  );
});

Deno.test("parseSpropParameterSets: whitespace, missing padding, empty entries, bad base64", () => {
  const [sps, pps] = parseSpropParameterSets(
    " Z0LAFdoFB+wF qDAwNSgAAAMACAAAAwGUeLF1 ,\taM48gA ,",
  );
  assert.equal(sps.length, 27);
  assert.deepEqual(pps, Uint8Array.of(0x68, 0xce, 0x3c, 0x80));
  assert.deepEqual(parseSpropParameterSets(""), []);
  assert.deepEqual(parseSpropParameterSets(",,"), []);
  expectProtocolError(
    () => parseSpropParameterSets("Z0LAFdoF,a!b"),
    /entry 2 is not valid base64: "a!b"/,
  );
  expectProtocolError(
    () => parseSpropParameterSets("Z"),
    /entry 1 is not valid base64/,
  );
});

Deno.test("weird whitespace, case and attribute order are tolerated", () => {
  const sdp = parseSdp(
    "  v=0 \r" +
      "\ta=control: * \r" +
      "m=video   0  rtp/avp   96  97 \r" +
      "a=fmtp:97 packetization-mode=0\r" +
      "a=fmtp:96 PACKETIZATION-MODE = 1 ;; flag ;\r" +
      "a=rtpmap:97 H264/90000\r" +
      "a=rtpmap:96   h264/90000  \r" +
      "a=control:first\r" +
      "a=control:second\r" +
      "not an sdp line\r" +
      "m=audio 0 RTP/AVP 0\r",
  );
  assert.equal(sdp.sessionControl, "*");
  const [video, audio] = sdp.media;
  // The first listed format is used, with its own rtpmap and fmtp.
  assert.equal(video.payloadType, 96);
  assert.equal(video.encoding, "H264");
  assert.deepEqual(
    video.fmtp,
    new Map([["packetization-mode", "1"], ["flag", ""]]),
  );
  assert.equal(video.control, "first");
  assert.deepEqual([audio.encoding, audio.channels], ["PCMU", 1]);
});

Deno.test("unusable streams are skipped with reasons, usable ones kept", () => {
  const sdp = parseSdp(crlf([
    "v=0",
    "m=video 0 RTP/AVP 96",
    "a=control:trackID=0",
    "m=video 0 RTP/AVP 300",
    "m=audio 0 RTP/AVP abc",
    "m=audio 0 RTP/SAVP 0",
    "m=application 0 RTP/AVP 107",
    "a=rtpmap:107 vnd.onvif.metadata/90000",
    "m=video 0 RTP/AVP 98",
    "a=rtpmap:98 H264",
    "m=video 0 RTP/AVP 99",
    "a=rtpmap:99 H264/0",
    "m=audio 0 RTP/AVP 100",
    "a=rtpmap:100 PCMU/8000/0",
    "m=video",
    "m=<script> 0 RTP/AVP 96",
    "m=audio 0 RTP/AVP 8",
  ]));
  assert.deepEqual(sdp.skipped, [
    { kind: "video", reason: "payload type 96 has no a=rtpmap line" },
    { kind: "video", reason: 'invalid payload type "300"' },
    { kind: "audio", reason: 'invalid payload type "abc"' },
    {
      kind: "audio",
      reason: 'transport "RTP/SAVP" is not plain RTP (RTP/AVP)',
    },
    { kind: "video", reason: 'malformed a=rtpmap "H264"' },
    { kind: "video", reason: 'malformed a=rtpmap "H264/0"' },
    { kind: "audio", reason: 'malformed a=rtpmap "PCMU/8000/0"' },
    { kind: "video", reason: 'malformed m= line "video"' },
    { kind: "<script>", reason: 'malformed m= line "<script> 0 RTP/AVP 96"' },
  ]);
  assert.deepEqual(sdp.media.map((media) => [media.kind, media.encoding]), [
    ["application", "VND.ONVIF.METADATA"],
    ["audio", "PCMA"],
  ]);
});

Deno.test("input that is not SDP, or has no streams, is an error", () => {
  expectProtocolError(() => parseSdp(""), /is not SDP/);
  expectProtocolError(
    () => parseSdp("<html><body>401 Unauthorized</body></html>"),
    /is not SDP: "<html>/,
  );
  expectProtocolError(
    () => parseSdp("v=0\r\ns=no media\r\n"),
    /describes no streams/,
  );
  expectProtocolError(
    () => parseSdp(new Uint8Array([0xff, 0xfe, 0x00, 0x01])),
    /is not SDP/,
  );
});

Deno.test("an SDP cut at any point parses or fails with RtspProtocolError", () => {
  for (
    const sample of [
      GSTREAMER,
      HIKVISION,
      AXIS,
      DAHUA,
      REOLINK_H265,
      MJPEG_OPUS,
    ]
  ) {
    for (let cut = 0; cut <= sample.length; cut++) {
      const sdp = parseOrProtocolError(sample.slice(0, cut));
      // A stream that is kept has everything SETUP needs.
      for (const media of sdp?.media ?? []) {
        assert.ok(media.clockRate > 0 && media.encoding !== "");
      }
    }
  }
  // Cut inside the rtpmap: the stream is skipped, not half-parsed.
  const cut = GSTREAMER.slice(0, GSTREAMER.indexOf("H264/90000") + 2);
  assert.deepEqual(parseSdp(cut).skipped, [{
    kind: "video",
    reason: 'malformed a=rtpmap "H2"',
  }]);
});

Deno.test("huge lines and bodies: bounded, no other error type", () => {
  expectProtocolError(
    () => parseSdp(`v=0\r\na=x:${"y".repeat(1024 * 1024)}\r\n`),
    /too large/,
  );
  const hugeFmtp = parseSdp(
    `v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 ${
      "k=v;".repeat(100_000)
    }\r\n`,
  );
  assert.deepEqual(hugeFmtp.media[0].fmtp, new Map([["k", "v"]]));
  const hugeRtpmap = parseSdp(
    `v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 ${"H".repeat(500_000)}\r\n`,
  );
  assert.match(hugeRtpmap.skipped[0].reason, /^malformed a=rtpmap "H{80}"$/);
  const hugeKind = parseSdp(`v=0\r\nm=${"x".repeat(100_000)} 0 RTP/AVP 0\r\n`);
  assert.equal(hugeKind.skipped[0].kind, "x".repeat(32));
  assert.match(hugeKind.skipped[0].reason, /^malformed m= line "x{80}/);
  const manyMedia = parseSdp("v=0\n" + "m=audio 0 RTP/AVP 0\n".repeat(20_000));
  assert.equal(manyMedia.media.length, 20_000);
  // Random bytes never escape as anything but RtspProtocolError.
  let state = 5;
  const alphabet = "vma=: /\r\n0123456789RTPAVrtpmapcontrolH264*\t;,";
  for (let round = 0; round < 200; round++) {
    let text = "";
    for (let i = 0; i < 300; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      text += alphabet[state % alphabet.length];
    }
    parseOrProtocolError(text);
    parseOrProtocolError(
      new TextEncoder().encode(text).map((byte, i) => byte ^ (i * 37)),
    );
  }
});
