"""Synthetic HRTEM raw frames of nanoparticles on amorphous supports, with exact labels.

Built on abTEM (multislice / projected potentials) and ASE (atomic structures). Modules,
one physical concept each:

* `specimen`     -- nanoparticles (Au, Ag fcc; CdSe wurtzite / zinc blende) and amorphous supports
* `field`        -- where particles lie (sparse, partly clustered; area-fraction density)
* `scattering`   -- exit waves: per-particle abTEM boxes pasted into the field, support phase grating
* `optics`       -- objective lens transfer, partial coherence, aperture, pixel integration
* `camera`       -- dose -> electrons -> counts: Poisson + per-electron signal spread (DQE), MTF,
                    unblurred (aliased) noise, gain, read noise, X-ray hits
* `illumination` -- per-session uneven illumination and gain-reference error
* `labels`       -- exact projected-footprint labels from the atoms; optional human-label error model
* `micrograph`   -- one frame end to end (`simulate_frame`)
* `repository`   -- a whole synthetic repository mirroring a catalog (`simulate_repository`)
* `preview`      -- a page of example frames

Heavy imports (abTEM, dask) happen inside the functions.
"""

from __future__ import annotations

__all__ = ["FrameRequest", "SimulatedFrame", "SimulationError", "simulate_frame", "simulate_repository",
           "write_preview"]


def __getattr__(name):
    if name in ("simulate_repository", "SimulationError"):
        from temshift.simulate import repository

        return getattr(repository, name)
    if name in ("FrameRequest", "SimulatedFrame", "simulate_frame"):
        from temshift.simulate import micrograph

        return getattr(micrograph, name)
    if name == "write_preview":
        from temshift.simulate.preview import write_preview

        return write_preview
    raise AttributeError(f"module 'temshift.simulate' has no attribute {name!r}")
