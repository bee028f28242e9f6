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

from temshift._lazy import lazy_exports

_EXPORTS = {
    "FrameRequest": "temshift.simulate.micrograph",
    "SimulatedFrame": "temshift.simulate.micrograph",
    "simulate_frame": "temshift.simulate.micrograph",
    "SimulationError": "temshift.simulate.repository",
    "simulate_repository": "temshift.simulate.repository",
    "write_preview": "temshift.simulate.preview",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
