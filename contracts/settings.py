"""Reading a settings class from the environment: one SettingsError naming every variable at
fault and what is wrong with it, never its value (a mistaken value may carry a password)."""

from __future__ import annotations

from typing import TypeVar

import pydantic_settings
from pydantic import ValidationError

from contracts.errors import SettingsError

Settings = TypeVar("Settings", bound=pydantic_settings.BaseSettings)


def read_settings(settings_class: type[Settings]) -> Settings:
    """An instance of `settings_class` read from its environment variables, or a SettingsError
    with a line per variable at fault, e.g. `OUTBOX_DATABASE_URL: Field required`.

    settings_class: a pydantic-settings class; its `env_prefix` and `env_nested_delimiter`
        spell the variables' names.
    """
    prefix = settings_class.model_config.get("env_prefix") or ""
    nested = settings_class.model_config.get("env_nested_delimiter") or "__"
    try:
        return settings_class()
    except pydantic_settings.SettingsError as error:
        # Raised when a complex value (e.g. INVALIDATOR_REGIONS) is not valid JSON; the message
        # names the field between double quotes.
        text = str(error)
        field = text.split('"')[1] if '"' in text else "?"
        lines = [f"{prefix}{field.upper()}: not valid JSON ({error.__cause__})"]
    except ValidationError as error:
        lines = [
            f"{prefix}{nested.join(str(part).upper() for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        ]
    raise SettingsError("invalid settings:\n" + "\n".join(f"  {line}" for line in lines))
