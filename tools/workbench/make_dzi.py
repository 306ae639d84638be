# Builds tiles/slide.dzi: an 8000x6000 pink "tissue" image with a grid line every 500 px
# (thick every 1000 px) so drawn regions can be checked against image coordinates by eye.
import pyvips
W, H = 8000, 6000
xyz = pyvips.Image.xyz(W, H)
x = xyz[0]; y = xyz[1]
base_r = (x * 0 + 236) - (y / H) * 30
base_g = (x * 0 + 200) - (x / W) * 60
base_b = (x * 0 + 222)
grid = ((x % 500) < 3) | ((y % 500) < 3) | ((x % 1000) < 8) | ((y % 1000) < 8)
img = base_r.bandjoin([base_g, base_b]).cast("uchar")
img = grid.ifthenelse([90, 40, 120], img)
for gx in range(0, W, 1000):
    for gy in range(0, H, 1000):
        try:
            t = pyvips.Image.text("%d,%d" % (gx, gy), dpi=300)
            img = img.insert(t.ifthenelse([20, 20, 20], img.crop(gx + 20, gy + 20, t.width, t.height)), gx + 20, gy + 20)
        except Exception as e:
            pass
img.dzsave("tiles/slide", suffix=".jpg[Q=85]", tile_size=254, overlap=1)
print("ok", img.width, img.height)
