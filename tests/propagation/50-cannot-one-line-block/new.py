import flordb as flor
from sim import World

world = World(seed=flor.arg("seed", 0))
for t in flor.loop("tick", range(1000)):
    world.step()
    flor.log("energy", world.energy())
flor.log("population", world.population())
