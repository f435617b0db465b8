"""What a server is allowed to do: models, workers, queue and size limits, authentication."""

from __future__ import annotations

from dataclasses import dataclass

from memnet import devices
from memnet.errors import MemNetError
from memnet.imaging.picture import MAX_PIXELS

__all__ = ["LOCAL_HOSTS", "ServeSettings"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeSettings:
    """The limits and choices of one server; `check()` refuses values that cannot work."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Model specs clients may choose (released names or .safetensors files); empty = the zoo.
    models: tuple[str, ...] = ()
    workers: int = 1
    queue_size: int = 8
    # Largest restored image (width × height of the output), so SR inputs are held to
    # max_pixels / scale²: the output is what the network and the encoder pay for.
    max_pixels: int = 16_000_000
    max_upload_bytes: int = 32 * 1024 * 1024
    # Outputs larger than this become a job (202 + job id) unless the client asks otherwise.
    sync_max_pixels: int = 2_000_000
    token: str | None = None
    device: str = "auto"
    tile: int | None = None
    job_ttl_s: float = 600.0
    max_kept_jobs: int = 64

    def check(self) -> ServeSettings:
        """Return self, or raise a one-line MemNetError for a setting that cannot work."""
        if not 0 <= self.port <= 65535:
            raise MemNetError(f"--port must be in 0..65535, got {self.port}")
        if self.workers < 1:
            raise MemNetError("--workers must be at least 1")
        if self.queue_size < 1:
            raise MemNetError("--queue must be at least 1")
        if not 64 <= self.max_pixels <= MAX_PIXELS:
            raise MemNetError(f"--max-pixels must be in 64..{MAX_PIXELS:,}")
        if self.max_upload_bytes < 1024:
            raise MemNetError("--max-upload-mb is too small to hold an image")
        if self.sync_max_pixels < 0:
            raise MemNetError("--sync-max-pixels must be non-negative")
        if self.token is not None and len(self.token) < 8:
            raise MemNetError("--token must be at least 8 characters")
        if self.tile is not None and self.tile < 0:
            raise MemNetError("--tile must be 0 (whole image) or a positive tile edge")
        # A device that cannot work fails at start-up, not at the first request.
        devices.resolve_device(self.device)
        return self

    @property
    def is_local(self) -> bool:
        """Whether the server only listens on this machine's loopback interface."""
        return self.host in LOCAL_HOSTS
