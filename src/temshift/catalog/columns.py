"""The published metadata schema and its normalized field names."""

#: published column name -> normalized field name (units in the name)
PUBLISHED_TO_FIELD = {
    "File name": "file",
    "Date": "date",
    "Material": "material",
    "Nanoparticle Size (nm)": "diameter_nm",
    "Nanoparticle Shape": "shape",
    "Support": "support",
    "Instrument": "instrument",
    "Dosage (e/A2)": "dose_e_per_A2",
    "Pixel Scale (nm)": "pixel_scale_nm",
    "Folder": "folder",
}
FIELD_TO_PUBLISHED = {v: k for k, v in PUBLISHED_TO_FIELD.items()}

#: fields that must parse as numbers
NUMERIC_FIELDS = ("diameter_nm", "dose_e_per_A2", "pixel_scale_nm")

#: derived: a microscope session is one date in one folder
DERIVED_FIELDS = ("session",)

#: normalized fields in the order they are shown
FIELDS = (
    "file",
    "folder",
    "date",
    "session",
    "material",
    "diameter_nm",
    "shape",
    "support",
    "instrument",
    "dose_e_per_A2",
    "pixel_scale_nm",
)

#: absolute tolerance for numeric equality without an explicit tolerance
DEFAULT_ABS_TOL = 1e-5
