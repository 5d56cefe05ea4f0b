import { DuckDBInstance } from '@duckdb/node-api';
const [file, col] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const r = await con.runAndReadAll(`SELECT count(*)::BIGINT AS n, coalesce(sum(list_sum(${col}))::BIGINT, 0) AS s, coalesce(sum(len(${col}))::BIGINT, 0) AS t FROM read_parquet('${file}')`);
const row = r.getRows()[0];
console.log(JSON.stringify({rows: Number(row[0]), sum: Number(row[1]), tokens: Number(row[2])}));
