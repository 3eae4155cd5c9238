#!/usr/bin/env python3
"""Make the batch-list fixtures of the console tests (no binaries in git).

Usage: make_fixtures.py OUTDIR
  list.xlsx  header to/name/dept: two good rows and one row without an address
  list.xls   header 邮箱/name (the Chinese header the API also accepts): two good rows
"""
import os
import sys

import openpyxl
import xlwt

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

wb = openpyxl.Workbook()
ws = wb.active
ws.title = "list"
ws.append(["to", "name", "dept"])
ws.append(["xlsx-one@example.test", "张三", "研发"])
ws.append(["xlsx-two@example.test", "李四", "市场"])
ws.append([None, "没有地址", "财务"])
wb.save(os.path.join(out, "list.xlsx"))

book = xlwt.Workbook(encoding="utf-8")
sh = book.add_sheet("名单")
for r, row in enumerate([["邮箱", "name"], ["xls-one@example.test", "王五"], ["xls-two@example.test", "赵六"]]):
    for c, v in enumerate(row):
        sh.write(r, c, v)
book.save(os.path.join(out, "list.xls"))
print(f"fixtures in {out}")
