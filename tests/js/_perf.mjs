import { Ally } from "ally-engine";
const ally = new Ally();
const r = await ally.make().user(1).company("Elite").create();
await ally.addCredits(r, 9e15);
for (const n of [20000, 100000]) {
  let t = performance.now();
  for (let i = 0; i < n; i++) await ally.provision(r.id, 1);
  let dt = performance.now() - t;
  console.log("sequential", n, Math.round(n / dt * 1000), "/s");
  t = performance.now();
  const batch = [];
  for (let i = 0; i < n; i++) batch.push(ally.provision(r.id, 1));
  await Promise.all(batch);
  dt = performance.now() - t;
  console.log("concurrent", n, Math.round(n / dt * 1000), "/s");
}
