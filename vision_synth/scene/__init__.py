"""Procedural scene compositor: backgrounds, objects, defects, placement with occlusion, blending."""
