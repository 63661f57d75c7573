#!/usr/bin/python3
"""A stand-in RTSP camera for tests: GStreamer's RTSP server on loopback.

Prints "READY <port>" on stdout once it listens, then serves until killed.
Run with /usr/bin/python3 (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = {
    # Parameter sets in-band before every IDR, as most cameras send them.
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop}"
    " bitrate={kbps} ! video/x-h264,profile=constrained-baseline"
    " ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 mtu={mtu}",
    # Parameter sets only in the SDP's sprop-parameter-sets, as some do.
    "h264-sprop-only": "x264enc tune=zerolatency speed-preset=ultrafast"
    " key-int-max={gop} bitrate={kbps}"
    " ! video/x-h264,profile=constrained-baseline,stream-format=avc,alignment=au"
    " ! rtph264pay name=pay0 pt=96 config-interval=0 mtu={mtu}",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop}"
    " ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96",
}

AUDIO = {
    "none": "",
    "pcmu": "audiotestsrc is-live=true ! audioconvert ! audioresample"
    " ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": "audiotestsrc is-live=true ! audioconvert ! audioresample"
    " ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8",
    "opus": "audiotestsrc is-live=true ! audioconvert ! audioresample"
    " ! opusenc ! rtpopuspay name=pay1 pt=97",
    "aac": "audiotestsrc is-live=true ! audioconvert ! audioresample"
    " ! voaacenc ! rtpmp4gpay name=pay1 pt=97",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--video", choices=sorted(VIDEO), default="h264")
    parser.add_argument("--audio", choices=sorted(AUDIO), default="none")
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--kbps", type=int, default=800)
    parser.add_argument("--mtu", type=int, default=1400)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    launch = (
        "videotestsrc is-live=true pattern=ball"
        " ! video/x-raw,width=320,height=240,framerate=25/1 ! videoconvert ! "
        + VIDEO[args.video].format(gop=args.gop, kbps=args.kbps, mtu=args.mtu)
    )
    if AUDIO[args.audio]:
        launch += " " + AUDIO[args.audio]
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + " )")
    # One pipeline per client, so every session starts at a keyframe the way
    # a camera's does.
    factory.set_shared(False)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.TCP)

    if args.auth != "none":
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "basic":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(
                GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token
            )
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role("user")
        permissions.add_permission_for_role(
            "user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True
        )
        permissions.add_permission_for_role(
            "user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True
        )
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print("FAILED could not listen", flush=True)
        sys.exit(1)
    print("READY %d" % server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
