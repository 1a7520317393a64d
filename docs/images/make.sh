#!/bin/sh
# Regenerate the pictures shown in the README from the bundled example study.
# Needs the plot extra:  pip install 'ketascore[plot]'
# Run from anywhere:     sh docs/images/make.sh   (KETASCORE=/path/to/ketascore to choose one)
set -eu
cd "$(dirname "$0")/../.."
ks=${KETASCORE:-ketascore}
study=examples/ketamine-trial
"$ks" plot "$study" --scale madrs --by arm --kind trajectory --dpi 120 -o docs/images/trajectory.png
"$ks" plot "$study" --scale madrs --by arm --kind spaghetti --dpi 120 -o docs/images/spaghetti.png
"$ks" plot "$study" --scale madrs --kind waterfall --visit day1 --dpi 120 -o docs/images/waterfall.png
"$ks" plot "$study" --scale madrs --by arm --kind distribution --dpi 120 -o docs/images/distribution.png
