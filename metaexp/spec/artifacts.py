"""`artifacts:`: where each try's diff, log tail and changed target files are kept as Optuna artifacts.

The default is a directory beside the journal (`.metaexp/artifacts/`); a cluster whose driver and
dashboard run on different machines puts them in a bucket (S3 or GCS, optional packages).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict

DEFAULT_PATH = ".metaexp/artifacts"


class ArtifactsSpec(_Strict):
    store: Literal["filesystem", "s3", "gcs", "none"] = Field(
        "filesystem",
        description="filesystem: a directory (path); s3 / gcs: a bucket (needs boto3 / "
        "google-cloud-storage); none: no artifacts",
    )
    path: str = Field(DEFAULT_PATH, description="filesystem: the directory, relative to the spec's folder")
    bucket: str | None = Field(None, description="s3 / gcs: the bucket's name")
    endpoint_url: str | None = Field(
        None, description="s3: another S3-compatible endpoint (MinIO, Ceph), e.g. http://minio:9000"
    )

    @field_validator("path", "bucket", "endpoint_url")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (not value or len(value) > 1024 or any(ord(c) < 32 for c in value)):
            raise ValueError("empty, too long or a control character")
        return value

    @model_validator(mode="after")
    def _bucket_for_clouds(self) -> ArtifactsSpec:
        if self.store in ("s3", "gcs") and not self.bucket:
            raise ValueError(f"store {self.store} needs bucket: NAME")
        if self.store not in ("s3", "gcs") and self.bucket is not None:
            raise ValueError(f"bucket is for store s3 or gcs, not {self.store}")
        if self.endpoint_url is not None and self.store != "s3":
            raise ValueError("endpoint_url is for store s3")
        return self


__all__ = ["DEFAULT_PATH", "ArtifactsSpec"]
