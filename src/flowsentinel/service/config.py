"""Settings of the prediction service (environment variables ``FLOWSENTINEL_SERVE_*``).

They sit beside the tool's core :class:`~flowsentinel.core.settings.Settings` (same prefix, read
the same way): the tracking store and ``FLOWSENTINEL_HOME`` come from there, everything the HTTP
server decides comes from here. ``flowsentinel serve`` flags override them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flowsentinel.bounded import Limits


class ServiceSettings(BaseSettings):
    """What one ``flowsentinel serve`` process serves and how."""

    model_config = SettingsConfigDict(env_prefix="FLOWSENTINEL_SERVE_", extra="ignore")

    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models to serve, comma-separated: registered names (their champion), "
        "models:/NAME@alias, models:/NAME/VERSION, runs:/... or local model folders. "
        "Default: FLOWSENTINEL_DEFAULT_MODEL, else models:/flowsentinel-cicids2017-dos@champion.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port.")
    workers: int = Field(default=1, ge=1, description="Worker processes (uvicorn).")
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, prediction and model routes need it in the X-API-Key header "
        "(or Authorization: Bearer KEY).",
    )
    max_batch: int = Field(default=10_000, ge=1, description="Most flows in one /v1/predict.")
    max_body_bytes: int = Field(
        default=16 << 20, ge=1024, description="Largest JSON body in bytes (413 beyond)."
    )
    max_upload_bytes: int = Field(
        default=64 << 20, ge=1024, description="Largest /v1/scan upload in bytes (413 beyond)."
    )
    max_scan_flows: int = Field(
        default=200_000, ge=1, description="Most flows one /v1/scan upload may hold (413 beyond)."
    )
    max_scan_bytes: int = Field(
        default=256 << 20,
        ge=1024,
        description="Most bytes a compressed /v1/scan upload may expand to (413 beyond, checked "
        "while it is decompressed).",
    )
    max_scan_packets: int = Field(
        default=2_000_000,
        ge=1,
        description="Most packets of a capture uploaded to /v1/scan (413 beyond, checked while "
        "it is metered).",
    )
    log_level: str = Field(default="info", description="uvicorn log level.")

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
        return value

    @property
    def scan_limits(self) -> Limits:
        return Limits(self.max_scan_bytes, self.max_scan_flows, self.max_scan_packets)

    @property
    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None
