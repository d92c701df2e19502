"""A material as the devices file, the admin API and the built-in library write it.

Its own module, below both ``inventory`` (which stores it) and ``material_library`` (which
reads the built-in ones from the slicer profiles), so neither imports the other back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MaterialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    kind: Literal["filament", "sheet"]
    name: str = ""
    density_g_cm3: float | None = Field(None, gt=0, lt=25)
    price_per_kg: float | None = Field(None, ge=0)
    price_per_sheet: float | None = Field(None, ge=0)
    sheet_mm: tuple[float, float] | None = None
    thickness_mm: float | None = Field(None, gt=0, lt=100)
    laser_material: str | None = None
    nozzle_c: tuple[float, float] | None = Field(None, description="[min, max] °C")
    bed_c: tuple[float, float] | None = Field(None, description="[min, max] °C")

    @model_validator(mode="after")
    def _needs_numbers(self) -> MaterialIn:
        if self.kind == "filament" and self.density_g_cm3 is None:
            raise ValueError(f"filament {self.id} needs density_g_cm3")
        return self
