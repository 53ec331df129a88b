# Sourced by prepare_photos.sh and prepare_photos_split.sh: one folder of links per Debian
# lomiri-wallpapers package (their photos share /usr/share/backgrounds, so each package becomes its
# own source collection) under "$SRC", which the caller creates and removes.
for pkg in lomiri-wallpapers-16.04 lomiri-wallpapers-20.04; do
  if ! dpkg -L "$pkg" >/dev/null 2>&1; then
    echo "error: Debian package $pkg is not installed (apt-get update && apt-get install $pkg)" >&2
    exit 2
  fi
  mkdir -p "$SRC/$pkg"
  dpkg -L "$pkg" | grep -iE '\.(jpe?g|png)$' | while read -r f; do ln -s "$f" "$SRC/$pkg/"; done
done
