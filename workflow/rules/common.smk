from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")


def all_outputs():
    """Every file the default target produces."""
    return [
        "results/example/spectrum.csv",
        "results/example/spectrum.png",
    ]
