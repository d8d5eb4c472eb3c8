"""Video through PyAV (FFmpeg's libraries; the ``video`` extra): frames read one at a time as ``[H, W, 3]``
uint8 arrays, and written at a given frame rate and size, so memory does not grow with the length.

Encoders by suffix: H.264 (``.mp4``, ``.mov``, ``.mkv``, ``.m4v``; constant quality CRF 18, 4:2:0 where the
sides are even and 4:4:4 where one is odd, so the size is kept exactly), VP9 (``.webm``), MPEG-4 Part 2
(``.avi``). An input's audio is copied into the output unchanged where the container takes it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from translate.errors import BadImageError, InputError

PathLike = Union[str, "os.PathLike[str]"]
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".m4v", ".webm", ".avi"})
_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".m4v": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def is_video_file(path: PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise InputError('reading and writing video needs PyAV: pip install "translate[video]"') from None
    return av


class VideoReader:
    """The frames of a video file, in order, as ``[H, W, 3]`` uint8 RGB arrays; ``rate`` (frames per second),
    ``size`` ``(width, height)`` and ``frames`` (the container's count; 0 when it does not say)."""

    def __init__(self, path: PathLike) -> None:
        av = _av()
        self.path = Path(path)
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as err:
            raise BadImageError(f"{path}: cannot read video ({str(err).splitlines()[0] if str(err) else 'no video stream'})") from None
        self.stream.thread_type = "AUTO"
        self.rate: Fraction = self.stream.average_rate or self.stream.guessed_rate or Fraction(30)
        self.size = (self.stream.codec_context.width, self.stream.codec_context.height)
        self.frames = int(self.stream.frames or 0)
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None

    def packets(self) -> Iterator[Any]:
        """The container's packets in order: the video's and the audio's (for copying it)."""
        streams = [s for s in (self.stream, self.audio) if s is not None]
        return self.container.demux(*streams)

    def decode(self, packet: Any) -> Iterator[np.ndarray]:
        for frame in packet.decode():
            yield frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        self.container.close()


class VideoWriter:
    """Writes ``[H, W, 3]`` uint8 RGB frames to ``path`` at ``rate`` frames per second, ``size`` ``(width,
    height)``; ``audio``: an input audio stream whose packets :meth:`copy` muxes unchanged. Written to a
    temporary name beside ``path`` and renamed when closed, so a failure leaves no half video."""

    def __init__(self, path: PathLike, rate: Fraction, size: tuple[int, int], audio: Optional[Any] = None) -> None:
        av = _av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise InputError(f"{path}: write video as one of {', '.join(sorted(VIDEO_EXTENSIONS))}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self.container = av.open(str(self.tmp), mode="w")
        codec = _CODECS[suffix]
        self.stream = self.container.add_stream(codec, rate=Fraction(rate).limit_denominator(1001 * 1000))
        self.stream.width, self.stream.height = size
        even = size[0] % 2 == 0 and size[1] % 2 == 0
        self.stream.pix_fmt = "yuv420p" if even or codec == "mpeg4" else "yuv444p"
        if codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "medium"}
        elif codec == "libvpx-vp9":
            self.stream.options = {"crf": "24", "b": "0"}
        if codec == "mpeg4" and not even:
            raise InputError(f"{path}: MPEG-4 (.avi) needs even sides, the video is {size[0]}x{size[1]}; write .mp4 or .mkv")
        self.audio_in = audio
        self.audio_out = None
        if audio is not None:
            try:
                self.audio_out = self.container.add_stream_from_template(audio)
            except (ValueError, av.error.FFmpegError):
                self.audio_out = None  # a codec this container does not take: the video is written without it
        self._av = av

    def write(self, pixels: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def copy(self, packet: Any) -> None:
        """Mux an audio packet of the input as it is."""
        if self.audio_out is not None and packet.dts is not None:
            packet.stream = self.audio_out
            self.container.mux(packet)

    def close(self, keep: bool = True) -> None:
        """Flush the encoder and rename the file into place (``keep``), or delete it."""
        try:
            if keep:
                for packet in self.stream.encode():
                    self.container.mux(packet)
        finally:
            self.container.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
