"""`netscope live`: heatmaps and activations on camera or video frames."""

from __future__ import annotations

import sys

from netscope.cli.method_options import add_method_options, given_settings
from netscope.cli.options import number
from netscope.errors import NetscopeError
from netscope.vision.methods.registry import describe, names


def add(sub) -> None:
    p = sub.add_parser("live", help="Grad-CAM heatmaps or layer activations on camera or "
                       "video frames in real time")
    p.add_argument("--source", default="0",
                   help="camera index (default 0), video file, folder of images, or 'pattern'")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the model's device, "
                   "else the CPU)")
    p.add_argument("--output-key", help="for models that return a dict or tuple: the entry "
                   "(or position) holding the class scores")
    p.add_argument("--mode", choices=["heatmap", "activations"], default="heatmap")
    p.add_argument("--layer", help="starting layer for activations mode")
    p.add_argument("--method", default="gradcam", choices=names("live"),
                   help="heatmap method (key c cycles through them): "
                   + describe(names("live")))
    number(p, "--frames", lo=1, hi=10**9, help="stop after N processed frames")
    p.add_argument("--record", help="write the overlaid stream to this .mp4/.avi file")
    p.add_argument("--snapshots", default="netscope-results/live", help="snapshot folder")
    p.add_argument("--no-display", action="store_true", help="no window and no page (headless)")
    p.add_argument("--web", action="store_true",
                   help="serve the stream and controls as a web page instead of a window "
                   "(automatic where no display exists)")
    p.add_argument("--host", default="127.0.0.1", help="address for the page (default local)")
    number(p, "--port", lo=0, hi=65535, default=8765, help="port for the page, 0: any free one")
    p.add_argument("--every-frame", action="store_true",
                   help="process every frame of a file instead of dropping stale ones")
    add_method_options(p, names("live"), title="method settings (given to every method of "
                       "the cycle that reads them; default: each method's own)")
    p.set_defaults(func=_live)


def _check(args) -> None:
    """Everything that needs no model or camera, before either is opened."""
    from pathlib import Path

    from netscope.files.folders import check_writable_dir, check_writable_file

    endless = args.source == "pattern" or args.source.isdigit()
    if not endless and not Path(args.source).exists():
        raise NetscopeError(f"{args.source}: no such video file or folder (sources: a camera "
                            f"index, a video file, a folder of images, or 'pattern').")
    if args.no_display and not args.record and args.frames is None and endless:
        raise NetscopeError(f"--no-display with a source that never ends ({args.source!r}) "
                            f"would run forever and produce nothing: add --frames N or "
                            f"--record FILE, or drop --no-display.")
    if args.record:
        check_writable_file(args.record, "--record")
        if Path(args.record).suffix.lower() not in (".mp4", ".avi"):
            raise NetscopeError(f"--record {args.record}: record to a .mp4 or .avi file (the "
                                f"formats OpenCV writes everywhere).")
    if not args.no_display:
        check_writable_dir(args.snapshots, "--snapshots")


def _live(args) -> int:
    _check(args)  # before PyTorch, the model and the camera
    from netscope.vision.core.device import resolve_device, to_device
    from netscope.vision.live import pipeline
    from netscope.vision.live.guard import exposed_warning
    from netscope.vision.live.record import Recorder
    from netscope.vision.live.sources import open_source
    from netscope.vision.live.view import LiveView
    from netscope.vision.live.web import WebSink
    from netscope.vision.live.window import WindowSink, window_available
    from netscope.vision.models.zoo import load_model

    if args.device:
        resolve_device(args.device)  # before the camera opens
    source = open_source(args.source)
    try:
        lm = to_device(load_model(args.model), args.device, args.output_key)
        view = LiveView(lm, args.mode, args.layer, args.snapshots, cam_method=args.method,
                        cam_settings=given_settings(args))
    except BaseException:
        source.close()
        raise
    sinks, window, web, recorder = [], None, None, None
    if not args.no_display:
        if not args.web and window_available():
            window = WindowSink(view)
            sinks.append(window)
        else:
            try:
                web = WebSink(view, args.host, args.port,
                              notify=lambda m: print(f"netscope: {m}", file=sys.stderr))
            except OSError as exc:
                source.close()
                raise NetscopeError(f"cannot serve on {args.host}:{args.port} "
                                    f"({exc.strerror or exc}); pick another --port.") from None
            sinks.append(web)
            warning = exposed_warning(args.host)
            if warning:
                print(f"netscope: warning: {warning}", file=sys.stderr, flush=True)
            print(f"live page: {web.url}  (Ctrl-C or the quit button stops)", flush=True)
    if args.record:  # at the rate frames are made; a file processed frame by frame: its own
        recorder = Recorder(args.record, fps=source.fps if args.every_frame else None)
        if recorder.recovered:
            print(f"netscope: an interrupted recording was kept: {recorder.recovered}",
                  file=sys.stderr, flush=True)
        sinks.append(recorder)
    try:
        stats = pipeline.run(source, lambda f: view.render(f.image), sinks, args.frames,
                             block=args.every_frame,
                             fps=None if args.every_frame else source.fps)
    except KeyboardInterrupt:
        stats = None
    finally:
        if window:
            window.close()
        if web:
            web.close()
        written = recorder.close() if recorder else None
    if stats is None:
        print("stopped")
        return 0
    print(f"{source.name} ({stats.reason}): {stats.processed} frames in {stats.seconds:.1f} s "
          f"({stats.fps:.1f} fps), median latency {stats.median_latency * 1e3:.0f} ms, "
          f"{stats.dropped} stale frames dropped")
    if written:
        print(f"recorded {recorder.frames} frames to {written} at {recorder.rate():.1f} fps")
    return 0
