#!/usr/bin/env python3
"""Write crates/storage/tests/fixtures/estate_eval.json: a realistic AWS estate and the
queries of the estate search evaluation (recall@5, MRR per mode; tests/it/estate_eval.rs).

The estate is generated deterministically: eight workloads, each deployed as production,
staging and development twins (same names, different `env` tag, sometimes another account or
region), several database families (RDS PostgreSQL/MySQL/MariaDB/SQL Server, Aurora, DynamoDB,
Redshift, ElastiCache), untagged leftovers, public and private resources, and names that do not
contain their class word ("ledger", "orders-main"). Metadata follows what the importers keep
(snake_case keys of the AWS CLI fields).

Each query lists its relevant resources by key (the ARN). `kind` is `attribute` (names an
attribute and a class), `class`, `name` (a name or identifier word) or `paraphrase` (shares no
word with what it wants). Run it again after editing; the output is committed.
"""
import json
import os

ACCOUNTS = {
    "production": ("111111111111", "acme-prod"),
    "staging": ("222222222222", "acme-staging"),
    "development": ("333333333333", "acme-dev"),
}
ENV_REGION = {"production": "us-east-1", "staging": "us-east-1", "development": "us-west-2"}

resources = []


def add(rtype, ident, env, region=None, name=None, state=None, tags=None, meta=None, account=None, arn=None):
    service = rtype.split(":")[0]
    acct, acct_name = ACCOUNTS[env] if env else ACCOUNTS["production"]
    if account:
        acct, acct_name = account
    region = region or (ENV_REGION[env] if env else "us-east-1")
    t = {} if tags is None else dict(tags)
    if env and tags is None:
        t = {"env": env}
    elif env and "env" not in t and tags is not None and tags != {}:
        t["env"] = env
    if arn is None:
        kind = rtype.split(":")[1]
        arn = {
            "rds:db": f"arn:aws:rds:{region}:{acct}:db:{ident}",
            "rds:cluster": f"arn:aws:rds:{region}:{acct}:cluster:{ident}",
            "dynamodb:table": f"arn:aws:dynamodb:{region}:{acct}:table/{ident}",
            "s3:bucket": f"arn:aws:s3:::{ident}",
            "lambda:function": f"arn:aws:lambda:{region}:{acct}:function:{ident}",
            "sqs:queue": f"arn:aws:sqs:{region}:{acct}:{ident}",
            "sns:topic": f"arn:aws:sns:{region}:{acct}:{ident}",
            "ec2:instance": f"arn:aws:ec2:{region}:{acct}:instance/{ident}",
            "ecs:cluster": f"arn:aws:ecs:{region}:{acct}:cluster/{ident}",
            "eks:cluster": f"arn:aws:eks:{region}:{acct}:cluster/{ident}",
            "elasticache:cluster": f"arn:aws:elasticache:{region}:{acct}:cluster:{ident}",
            "redshift:cluster": f"arn:aws:redshift:{region}:{acct}:cluster:{ident}",
            "elasticloadbalancing:loadbalancer": f"arn:aws:elasticloadbalancing:{region}:{acct}:loadbalancer/app/{ident}/50dc6c495c0c9188",
            "iam:role": f"arn:aws:iam::{acct}:role/{ident}",
            "es:domain": f"arn:aws:es:{region}:{acct}:domain/{ident}",
        }[rtype]
    if rtype in ("s3:bucket", "iam:role"):
        region = "global" if rtype == "iam:role" else region
    r = {
        "resource_type": rtype,
        "identifier": ident,
        "account_id": acct,
        "account_name": acct_name,
        "region": region,
        "service": service,
        "arn": arn,
        "name": name or ident,
        "tags": t,
    }
    if state:
        r["state"] = state
    if meta:
        r["metadata"] = meta
    resources.append(r)
    return arn


WORKLOADS = ["orders", "billing", "catalog", "auth", "search", "analytics", "inventory", "notifications"]
ENVS = ["production", "staging", "development"]
key = {}  # (label) -> arn

for w in WORKLOADS:
    for env in ENVS:
        short = {"production": "prod", "staging": "stg", "development": "dev"}[env]
        team = {"orders": "commerce", "billing": "payments", "catalog": "commerce", "auth": "identity",
                "search": "discovery", "analytics": "data", "inventory": "supply", "notifications": "platform"}[w]
        tags = {"env": env, "team": team, "service": w}
        # Compute: an ECS service cluster per workload and env.
        key[(w, env, "ecs")] = add("ecs:cluster", f"{w}-{short}", env, tags=tags, state="active",
                                   meta={"running_tasks_count": 4 if env == "production" else 1})
        # Functions.
        key[(w, env, "lambda")] = add("lambda:function", f"{w}-worker-{short}", env, tags=tags, state="active",
                                      meta={"runtime": "python3.12" if w in ("analytics", "search", "billing") else "nodejs20.x",
                                            "handler": "app.handler", "memory_size": 512, "timeout": 30,
                                            "description": f"Background jobs of the {w} service"})
        # Queues and their dead-letter queues.
        key[(w, env, "sqs")] = add("sqs:queue", f"{w}-events-{short}", env, tags=tags)
        key[(w, env, "dlq")] = add("sqs:queue", f"{w}-events-{short}-dlq", env, tags=tags,
                                   meta={"redrive_source": f"{w}-events-{short}"})
        # Topics and task roles.
        key[(w, env, "sns")] = add("sns:topic", f"{w}-updates-{short}", env, tags=tags)
        key[(w, env, "role")] = add("iam:role", f"{w}-task-role-{short}", env, tags=tags,
                                    meta={"description": f"Task role of the {w} service"})
        # Buckets.
        key[(w, env, "s3")] = add("s3:bucket", f"acme-{w}-{short}-assets", env, tags=tags,
                                  meta={"block_public_access": True, "versioning": "Enabled"})

# Databases: per workload a family, with twins.
DB = {
    "orders": ("rds:db", "postgres", "orders-main"),
    "billing": ("dynamodb:table", None, "ledger"),
    "catalog": ("rds:db", "mysql", "catalog-core"),
    "auth": ("dynamodb:table", None, "sessions-store"),
    "search": ("rds:cluster", "aurora-postgresql", "search-index-meta"),
    "inventory": ("rds:db", "mariadb", "stockpile"),
    "analytics": ("rds:cluster", "aurora-mysql", "events-aurora"),
    "notifications": ("rds:db", "sqlserver-se", "notify-legacy"),
}
for w, (rtype, engine, base) in DB.items():
    for env in ENVS:
        short = {"production": "prod", "staging": "stg", "development": "dev"}[env]
        ident = f"{base}-{short}"
        tags = {"env": env, "service": w}
        if rtype == "rds:db":
            meta = {"engine": engine, "engine_version": "15.4" if engine == "postgres" else "8.0.35",
                    "db_instance_class": "db.r6g.xlarge" if env == "production" else "db.t4g.medium",
                    "multi_az": env == "production", "storage_encrypted": True,
                    "publicly_accessible": False, "deletion_protection": env == "production",
                    "endpoint": f"{ident}.c9akciq32.{ENV_REGION[env]}.rds.amazonaws.com"}
            key[(w, env, "db")] = add(rtype, ident, env, tags=tags, state="available", meta=meta)
        elif rtype == "rds:cluster":
            meta = {"engine": engine, "engine_version": "15.4", "multi_az": env == "production",
                    "storage_encrypted": True}
            key[(w, env, "db")] = add(rtype, ident, env, tags=tags, state="available", meta=meta)
        else:
            meta = {"billing_mode": "PAY_PER_REQUEST", "item_count": 1200000 if env == "production" else 5000}
            key[(w, env, "db")] = add(rtype, ident, env, tags=tags, state="active", meta=meta)

# Caches (ElastiCache Redis) for sessions and catalog.
for env in ENVS:
    short = {"production": "prod", "staging": "stg", "development": "dev"}[env]
    key[("cache", env, "sessions")] = add("elasticache:cluster", f"session-cache-{short}", env,
                                          tags={"env": env, "service": "auth"}, state="available",
                                          meta={"engine": "redis", "cache_node_type": "cache.r6g.large"})
# A data warehouse (Redshift) in production only, and an analytics lake bucket.
key["dwh"] = add("redshift:cluster", "acme-dwh", "production", tags={"env": "production", "team": "data"},
                 state="available", meta={"node_type": "ra3.xlplus", "number_of_nodes": 4})
key["lake"] = add("s3:bucket", "acme-clickstream-lake", "production", tags={"env": "production", "team": "data"},
                  meta={"block_public_access": True})
# A search engine domain.
key["opensearch"] = add("es:domain", "product-search", "production", tags={"env": "production", "service": "search"},
                        meta={"engine_version": "OpenSearch_2.11"})

# Production databases in Oregon (a second region) and a publicly accessible legacy MySQL.
key["reporting_db"] = add("rds:db", "reporting-replica", "production", region="us-west-2",
                          tags={"env": "production", "service": "analytics"}, state="available",
                          meta={"engine": "postgres", "engine_version": "15.4", "db_instance_class": "db.r6g.large",
                                "publicly_accessible": False, "storage_encrypted": True})
key["legacy_public_db"] = add("rds:db", "wp-legacy", "production", region="eu-west-1",
                              tags={"env": "production", "service": "marketing-site"}, state="available",
                              meta={"engine": "mysql", "engine_version": "5.7.44", "db_instance_class": "db.t3.small",
                                    "publicly_accessible": True, "storage_encrypted": False})
key["dev_public_db"] = add("rds:db", "sandbox-pg", "development",
                           tags={"env": "development"}, state="stopped",
                           meta={"engine": "postgres", "engine_version": "16.1", "publicly_accessible": True})

# EC2: web servers, bastions, batch workers, in three regions; some stopped; public IPs on web/bastion.
ec2_n = 0


def ec2(name, env, region, itype, state, public, role, extra_tags=None):
    global ec2_n
    ec2_n += 1
    iid = f"i-0{ec2_n:016x}"
    meta = {"instance_type": itype, "private_ip_address": f"10.{ec2_n % 250}.1.{ec2_n % 200 + 10}",
            "vpc_id": "vpc-0a1b2c3d", "image_id": "ami-0abcdef1234567890"}
    if public:
        meta["public_ip_address"] = f"54.{ec2_n % 250}.2.{ec2_n % 200 + 3}"
    tags = {"Name": name, "env": env, "role": role}
    tags.update(extra_tags or {})
    return add("ec2:instance", iid, env, region=region, name=name, tags=tags, state=state, meta=meta)


web = []
for i, region in enumerate(["us-east-1", "us-east-1", "eu-west-1", "eu-west-1", "eu-central-1"]):
    web.append(ec2(f"storefront-web-{i + 1}", "production", region, "m6i.large", "running", True, "web"))
stg_web = [ec2("storefront-web-stg-1", "staging", "us-east-1", "t3.medium", "running", True, "web")]
dev_web = [ec2("storefront-web-dev-1", "development", "us-west-2", "t3.small", "stopped", True, "web")]
bastions = [ec2("jump-box-prod", "production", "us-east-1", "t3.micro", "running", True, "bastion"),
            ec2("jump-box-eu", "production", "eu-west-1", "t3.micro", "running", True, "bastion")]
batch = [ec2(f"etl-runner-{i + 1}", "production", "us-west-2", "c6i.2xlarge", "stopped" if i % 2 else "running", False, "batch")
         for i in range(4)]
gpu = [ec2("ml-training-gpu", "development", "us-west-2", "p3.2xlarge", "stopped", False, "ml")]
frankfurt = [ec2(f"eu-api-{i + 1}", "production", "eu-central-1", "m6i.xlarge", "running", False, "api") for i in range(2)]

# Kubernetes and load balancers.
key["eks_prod"] = add("eks:cluster", "platform-k8s-prod", "production", tags={"env": "production", "team": "platform"},
                      state="active", meta={"version": "1.29"})
key["eks_stg"] = add("eks:cluster", "platform-k8s-stg", "staging", tags={"env": "staging", "team": "platform"},
                     state="active", meta={"version": "1.29"})
key["alb_store"] = add("elasticloadbalancing:loadbalancer", "storefront-alb", "production",
                       tags={"env": "production", "service": "storefront"}, state="active",
                       meta={"scheme": "internet-facing", "type": "application"})
key["alb_internal"] = add("elasticloadbalancing:loadbalancer", "internal-api-alb", "production",
                          tags={"env": "production", "service": "api"}, state="active",
                          meta={"scheme": "internal", "type": "application"})

# SNS topics.
key["alerts_topic"] = add("sns:topic", "ops-pager-alerts", "production", tags={"env": "production", "team": "sre"})
key["mail_topic"] = add("sns:topic", "customer-mailer", "production", tags={"env": "production", "service": "notifications"})

# Lambdas with descriptive purposes (for paraphrase queries).
key["thumbnailer"] = add("lambda:function", "thumbnailer", "production", tags={"env": "production", "service": "catalog"},
                         state="active", meta={"runtime": "python3.12", "description": "Resizes uploaded product photos into thumbnails",
                                               "memory_size": 1024, "timeout": 60})
key["invoice_pdf"] = add("lambda:function", "invoice-renderer", "production", tags={"env": "production", "service": "billing"},
                         state="active", meta={"runtime": "nodejs20.x", "description": "Renders monthly invoices as PDF documents"})
key["cost_report"] = add("lambda:function", "spend-digest", "production", tags={"env": "production", "team": "finops"},
                         state="active", meta={"runtime": "python3.12", "description": "Emails a weekly summary of the AWS bill"})

# IAM roles (global).
key["lambda_role"] = add("iam:role", "lambda-exec-orders", "production", tags={"env": "production"},
                         meta={"description": "Execution role assumed by the orders Lambda functions"})
key["ci_role"] = add("iam:role", "github-actions-deployer", "production", tags={"env": "production", "team": "platform"},
                     meta={"description": "Role assumed by the CI pipeline to deploy stacks"})

# Buckets: public website bucket, backups bucket, logs; untagged leftovers.
key["public_site"] = add("s3:bucket", "acme-www-static", "production", tags={"env": "production", "service": "marketing-site"},
                         meta={"block_public_access": False, "website_hosting": True, "policy_public": True})
key["public_dev"] = add("s3:bucket", "acme-dev-share", "development", tags={"env": "development"},
                        meta={"block_public_access": False, "policy_public": True})
key["snapshots"] = add("s3:bucket", "acme-rds-snapshot-archive", "production", tags={"env": "production", "team": "sre"},
                       meta={"block_public_access": True, "storage_class": "GLACIER"})
key["cloudtrail"] = add("s3:bucket", "acme-cloudtrail-logs", "production", tags={"env": "production", "team": "security"},
                        meta={"block_public_access": True})
untagged = []
for n in ["tmp-migration-2023", "old-exports-bucket", "test-upload-jd", "cf-templates-x9k2"]:
    untagged.append(add("s3:bucket", n, None, tags={}, meta={"block_public_access": True}))
untagged_other = [
    add("sqs:queue", "scratch-queue", None, tags={}),
    add("lambda:function", "hello-world-test", None, tags={}, state="active", meta={"runtime": "python3.9"}),
    ec2("unnamed-1", "development", "us-west-2", "t2.micro", "stopped", False, "none"),
]
# That EC2 instance is untagged in truth: strip its tags.
resources[-1]["tags"] = {}
resources[-1]["name"] = None
untagged_other[-1] = resources[-1]["arn"]

# Queues in Oregon (development lives there; plus a production one).
key["oregon_prod_queue"] = add("sqs:queue", "reporting-jobs", "production", region="us-west-2",
                               tags={"env": "production", "service": "analytics"})

prod_dbs = [key[(w, "production", "db")] for w in WORKLOADS] + [key["reporting_db"], key["legacy_public_db"]]
prod_dbs_relational = [key[(w, "production", "db")] for w in WORKLOADS if DB[w][0] != "dynamodb:table"] + [key["reporting_db"], key["legacy_public_db"]]

def envs_of(label, env):
    return [key[(w, env, label)] for w in WORKLOADS]

queries = [
    # attribute + class
    ("production database", "attribute", prod_dbs),
    ("production relational database", "attribute", prod_dbs_relational),
    ("staging postgres", "attribute", [key[("orders", "staging", "db")], key[("search", "staging", "db")]]),
    ("development mysql database", "attribute", [key[("catalog", "development", "db")], key[("analytics", "development", "db")]]),
    ("nosql tables in production", "attribute", [key[("billing", "production", "db")], key[("auth", "production", "db")]]),
    ("production functions", "attribute", envs_of("lambda", "production") + [key["thumbnailer"], key["invoice_pdf"], key["cost_report"]]),
    ("staging queues", "attribute", envs_of("sqs", "staging") + envs_of("dlq", "staging")),
    ("untagged buckets", "attribute", untagged),
    ("untagged resources", "attribute", untagged + untagged_other),
    ("public buckets", "attribute", [key["public_site"], key["public_dev"]]),
    ("publicly accessible database", "attribute", [key["legacy_public_db"], key["dev_public_db"]]),
    ("queues in Oregon", "attribute", envs_of("sqs", "development") + envs_of("dlq", "development") + [key["oregon_prod_queue"]]),
    ("stopped instances", "attribute", dev_web + [batch[1], batch[3]] + gpu + [untagged_other[-1], key["dev_public_db"]]),
    ("web servers in Ireland", "attribute", web[2:4]),
    ("virtual machines in Frankfurt", "attribute", [web[4]] + frankfurt),
    ("databases in Virginia", "attribute", [key[(w, e, "db")] for w in WORKLOADS for e in ("production", "staging")]),
    ("dev kubernetes", "attribute", []),  # filled below: no dev EKS -> staging/prod are not relevant
    ("staging container cluster", "attribute", envs_of("ecs", "staging") + [key["eks_stg"]]),
    ("orders database in production", "attribute", [key[("orders", "production", "db")]]),
    ("production redis", "attribute", [key[("cache", "production", "sessions")]]),
    ("running instances in Oregon", "attribute", [batch[0], batch[2]]),
    # class
    ("kubernetes cluster", "class", [key["eks_prod"], key["eks_stg"]]),
    ("load balancer", "class", [key["alb_store"], key["alb_internal"]]),
    ("data warehouse", "class", [key["dwh"]]),
    ("dead letter queue for orders", "class", [key[("orders", e, "dlq")] for e in ENVS]),
    # names and identifiers
    ("ledger", "name", [key[("billing", e, "db")] for e in ENVS]),
    ("storefront-alb", "name", [key["alb_store"]]),
    ("jump box", "name", bastions),
    ("etl runner", "name", batch),
    # paraphrases (no word of the resource's text)
    ("bastion host for ssh access", "paraphrase", bastions),
    ("image resizing", "paraphrase", [key["thumbnailer"]]),
    ("weekly cost report email", "paraphrase", [key["cost_report"]]),
    ("billing statements as pdf", "paraphrase", [key["invoice_pdf"]]),
    ("paging the on-call team", "paraphrase", [key["alerts_topic"]]),
    ("audit trail storage", "paraphrase", [key["cloudtrail"]]),
    ("database backups archive", "paraphrase", [key["snapshots"]]),
    ("who deploys from ci", "paraphrase", [key["ci_role"]]),
    ("full text search engine", "paraphrase", [key["opensearch"]]),
    ("user login sessions", "paraphrase", [key[("auth", e, "db")] for e in ENVS] + [key[("cache", e, "sessions")] for e in ENVS]),
    ("machine learning training box", "paraphrase", gpu),
]
# "dev kubernetes": there is no development EKS cluster; a query with no relevant resource
# measures nothing, so it is dropped.
queries = [q for q in queries if q[2]]

out = {
    "about": "Generated by scripts/make-estate-eval.py; see its docstring.",
    "resources": resources,
    "queries": [{"query": q, "kind": k, "relevant": rel} for q, k, rel in queries],
}
path = os.path.join(os.path.dirname(__file__), "..", "crates", "storage", "tests", "fixtures", "estate_eval.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1, sort_keys=False)
    f.write("\n")
print(f"{len(resources)} resources, {len(out['queries'])} queries -> {os.path.normpath(path)}")
