"""Rare-class augmentation of an existing COCO dataset (`vision-synth augment-rare`, `defects`)."""
