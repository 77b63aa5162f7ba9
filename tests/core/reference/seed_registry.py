"""The original system's registry (molecule-core, PR #2612) as data, read from
``seed-registry.md`` beside this file (a copy of ``../shared/reference/seed-registry.md``).

The providers table is parsed from the document; the runtimes' native providers, which the
document gives in prose, are transcribed here in its order, and a test checks the
transcription against the prose (every id and provider name it mentions, in order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCUMENT = Path(__file__).with_name("seed-registry.md")
SHARED_DOCUMENT = Path(__file__).parents[3] / ".." / "shared" / "reference" / "seed-registry.md"

# Where our ids differ from the original's: our contract already names this provider.
OUR_ID = {"openai-api": "openai"}


@dataclass(frozen=True)
class ReferenceProvider:
    name: str
    auth_env: tuple[str, ...]
    regex: str
    platform: bool


@dataclass(frozen=True)
class NativeArm:
    """A provider a runtime lists, with the exact ids the runtime adds (none: name-only)."""

    provider: str
    exact: tuple[str, ...] = ()


def _providers(text: str) -> dict[str, ReferenceProvider]:
    section = text.split("## Providers", 1)[1].split("\n## ", 1)[0]
    providers: dict[str, ReferenceProvider] = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| name "):
            continue
        cells = [cell.strip() for cell in line.replace("\\|", "\0").strip("|").split("|")]
        name, auth_env, regex = (cell.replace("\0", "|") for cell in cells[:3])
        platform = name.startswith("**")
        name = name.strip("*")
        providers[name] = ReferenceProvider(
            name=name,
            auth_env=tuple(part.strip() for part in auth_env.split(",")),
            regex=regex.strip("`"),
            platform=platform,
        )
    return providers


def _strip_list(text: str) -> frozenset[str]:
    section = text.split("## Credentials stripped on the platform path", 1)[1]
    paragraph = section.strip().split("\n\n")[-1]
    return frozenset(name.strip(" .\n") for name in paragraph.split(","))


_CLAUDE_IDS = (
    "claude-fable-5",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
)
_CODEX_IDS = (
    "gpt-5.5",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-5.3-codex",
    "gpt-5.3-codex-spark",
    "gpt-5.2",
)

RUNTIMES: dict[str, tuple[NativeArm, ...]] = {
    "claude-code": (
        NativeArm(
            "anthropic-oauth",
            (
                "sonnet",
                "opus",
                "haiku",
                "anthropic:sonnet",
                "anthropic:opus",
                "anthropic:haiku",
            ),
        ),
        NativeArm("anthropic-api", _CLAUDE_IDS + tuple(f"anthropic:{i}" for i in _CLAUDE_IDS)),
        NativeArm("kimi-coding", ("kimi-for-coding", "kimi-k2.5", "kimi-k2")),
        NativeArm(
            "minimax", ("MiniMax-M2", "MiniMax-M2.7", "MiniMax-M2.7-highspeed", "MiniMax-M3")
        ),
        NativeArm(
            "platform",
            (
                "anthropic/claude-fable-5",
                "anthropic/claude-opus-4-7",
                "anthropic/claude-sonnet-4-6",
                "moonshot/kimi-k2.6",
                "moonshot/kimi-k2.5",
                "minimax/MiniMax-M2.7",
                "minimax/MiniMax-M2.7-highspeed",
                "minimax/MiniMax-M3",
            ),
        ),
        NativeArm("zai"),
        NativeArm("deepseek"),
        NativeArm("xiaomi-mimo"),
    ),
    "hermes": (
        NativeArm("kimi-coding", ("kimi-coding/kimi-k2",)),
        NativeArm("platform", ("moonshot/kimi-k2.6", "moonshot/kimi-k2.5")),
        *(
            NativeArm(name)
            for name in (
                "openrouter",
                "huggingface",
                "ai-gateway",
                "opencode-zen",
                "opencode-go",
                "kilocode",
                "custom",
                "nvidia",
                "arcee",
                "ollama-cloud",
                "minimax-cn",
                "nousresearch",
                "deepseek",
                "zai",
                "xiaomi-mimo",
                "alibaba",
                "byok-anthropic",
                "byok-gemini",
                "byok-openai",
                "byok-minimax",
            )
        ),
    ),
    "codex": (
        NativeArm("openai-subscription", _CODEX_IDS),
        NativeArm("openai-api", _CODEX_IDS),
        NativeArm("platform", ("openai/gpt-5.4", "openai/gpt-5.4-mini")),
        NativeArm("byok-minimax"),
    ),
    "openclaw": (
        NativeArm("kimi-coding", ("moonshot:kimi-k2.6", "moonshot:kimi-k2.5")),
        NativeArm("platform", ("moonshot/kimi-k2.6", "moonshot/kimi-k2.5")),
        NativeArm("openrouter"),
        NativeArm("custom"),
        NativeArm("byok-openai"),
        NativeArm("byok-minimax"),
        NativeArm("groq"),
    ),
    "google-adk": (
        NativeArm("platform", ("platform:gemini-2.5-pro", "platform:gemini-2.5-flash")),
        NativeArm(
            "google",
            (
                "gemini-2.5-pro",
                "gemini-2.5-flash",
                "google_genai:gemini-2.5-pro",
                "google_genai:gemini-2.5-flash",
            ),
        ),
    ),
}

_TEXT = DOCUMENT.read_text(encoding="utf-8")
PROVIDERS = _providers(_TEXT)
PLATFORM_STRIP_LIST = _strip_list(_TEXT)


def runtimes_section() -> str:
    """The prose that lists each runtime's native providers."""
    section = _TEXT.split("## Runtimes and their native providers", 1)[1].split("\n## ", 1)[0]
    return section.split("Providers listed by no runtime", 1)[0]


def matches(provider: str, model: str) -> bool:
    """Whether the original's pattern of ``provider`` accepts ``model``, case-insensitively
    (our contract matches case-insensitively everywhere; the original only under ``(?i)``)."""
    regex = PROVIDERS[provider].regex.removeprefix("(?i)")
    return re.match(regex, model.strip(), re.IGNORECASE) is not None
