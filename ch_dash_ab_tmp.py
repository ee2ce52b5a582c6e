import statistics, time, psycopg
from pathlib import Path
from local.database import database
from bench import seed as seeding
old = Path("/tmp/ch_dashboard_old.sql").read_text()
old = old.replace("public.dashboard_figures(", "public.dashboard_figures_before_0025(").split("GRANT EXECUTE")[0]
with database("bench", purpose="bench", quiet=True) as urls:
    with psycopg.connect(urls.owner, autocommit=True) as owner:
        owner.execute(old.encode())
        owner.execute("GRANT EXECUTE ON FUNCTION public.dashboard_figures_before_0025(uuid, timestamptz) TO support_app")
    try:
        with psycopg.connect(urls.app, autocommit=True) as app:
            t = {"new": [], "old": []}
            for tenant in (seeding.BIG_TENANT,):
                for i in range(400):
                    for name, fn in (("new", "dashboard_figures"), ("old", "dashboard_figures_before_0025")):
                        with app.transaction():
                            app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
                            t0 = time.perf_counter()
                            app.execute(f"SELECT * FROM public.{fn}(%s, NULL)".encode(), (tenant,)).fetchone()
                            if i >= 20:
                                t[name].append(time.perf_counter() - t0)
            for k, v in t.items():
                print(f"dashboard_figures {k}: p50 {statistics.median(v)*1000:.2f} ms, p95 {statistics.quantiles(v, n=20)[18]*1000:.2f} ms, n={len(v)}")
    finally:
        with psycopg.connect(urls.owner, autocommit=True) as owner:
            owner.execute("DROP FUNCTION public.dashboard_figures_before_0025(uuid, timestamptz)")
